"""The rules for text that people type: SKU identity and one-line fields.

Each rule is defined once, here. The model fields carry the validators, so Django's
ModelForm (the admin), the API's serializers and `full_clean()` (the services) all
apply the same ones; `normalize_sku` is the only definition of "the same SKU".
"""

import re
import unicodedata

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

# Unicode's default-ignorable code points of the Basic Multilingual Plane that are not
# format characters (DerivedCoreProperties.txt): the combining grapheme joiner, Hangul
# fillers, Khmer inherent vowels, Mongolian variation selectors, variation selectors.
# They render as nothing, like the format characters.
OTHER_IGNORABLE = [
    (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
    (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8),
]  # fmt: skip


def _invisible_characters() -> str:
    """The BMP's characters that show nothing, as the inside of a regex class of \\u
    escapes: its format characters (category Cf: zero-width spaces and joiners, bidi
    controls, the soft hyphen, the byte-order mark, ...) and its other default-ignorable
    code points (OTHER_IGNORABLE).

    Only the BMP's: the schema's ECMA-262 patterns have no escape for the few beyond it
    (musical and hieroglyph format controls, tag characters, variation selectors 17+), so
    the rules below leave those alone everywhere -- the SKU's identity included --
    rather than refuse what the schema allows."""
    codes = {code for code in range(0x10000) if unicodedata.category(chr(code)) == "Cf"}
    codes.update(code for low, high in OTHER_IGNORABLE for code in range(low, high + 1))
    codes = sorted(codes)
    ranges, start = [], codes[0]
    for previous, code in zip(codes, [*codes[1:], None], strict=True):
        if code != previous + 1:
            ranges.append(f"\\u{start:04x}" + (f"-\\u{previous:04x}" if previous > start else ""))
            start = code
    return "".join(ranges)


# Control characters (C0, DEL, C1) and the line and paragraph separators.
CONTROL = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
# Characters that show nothing (see _invisible_characters).
INVISIBLE = _invisible_characters()
INVISIBLE_CHARACTERS = re.compile(f"[{INVISIBLE}]")
# Bidi embeddings, overrides and isolates: they reorder the text around them, so a name
# could display as something else. (The marks, U+200E and U+200F, stay allowed.)
BIDI_CONTROL = r"\u202a-\u202e\u2066-\u2069"

one_line_of_text = RegexValidator(
    rf"^[^{CONTROL}{BIDI_CONTROL}]*[^\s{CONTROL}{INVISIBLE}][^{CONTROL}{BIDI_CONTROL}]*\Z",
    "Must be one line of visible text, without control characters or bidi overrides.",
)
no_nul_characters = RegexValidator(r"^[^\x00]*\Z", "Null characters are not allowed.")
# A SKU is one line of visible text with no format (invisible) characters at all: they
# are left out of its identity anyway (normalize_sku), so storing one would only make
# two labels that print the same look different here.
sku_text = RegexValidator(
    rf"^[^{CONTROL}{INVISIBLE}]*[^\s{CONTROL}{INVISIBLE}][^{CONTROL}{INVISIBLE}]*\Z",
    "Must be one line of visible text, without control characters or invisible "
    "characters (zero-width, bidi controls, byte-order mark, variation selectors, ...).",
)


def trimmed(value: str) -> None:
    """No white space around the text. The API's fields and the admin's forms trim it
    before they validate; a service called with it directly must not store it."""
    if value != value.strip():
        raise ValidationError("Must not begin or end with white space.", code="untrimmed")


def normalize_sku(sku: str) -> str:
    """The identity of a SKU: two SKUs are the same product when these agree.

    Unicode compatibility caseless matching (NFKC of the case-folded text, as in
    Unicode's definition D146), with the characters that show nothing (INVISIBLE: format
    characters, variation selectors, ...) removed and white space trimmed, runs of it counting
    as one space. So `ABC-1`, `abc-1` and fullwidth `ＡＢＣ-1` are one SKU, and a lookup of
    `ABC-1` with a zero-width space finds it; so are `STRASSE-1` and `straße-1`, `ΑΣ-1`
    and `ας-1`, and a decomposed and a composed `café`.
    """
    text = unicodedata.normalize("NFD", sku).casefold()
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKD", text).casefold())
    return " ".join(INVISIBLE_CHARACTERS.sub("", text).split())


def has_identity(sku: str) -> None:
    """A SKU whose identity (normalize_sku) is not empty."""
    if not normalize_sku(sku):
        raise ValidationError("Must have a visible character.", code="blank_identity")


# A SKU's rules, for the model field: its text (the schema states `sku_text` as the
# pattern), no white space around it, and an identity.
SKU_RULES = [sku_text, trimmed, has_identity]
# A one-line field's rules: names and references.
ONE_LINE_RULES = [one_line_of_text, trimmed]
