"""The rules for text that people type: SKU identity and one-line fields.

Each rule is defined once, here. The model fields carry the validators, so Django's
ModelForm (the admin), the API's serializers and `full_clean()` (the services) all
apply the same ones; `normalize_sku` is the only definition of "the same SKU".
"""

import unicodedata

from django.core.validators import RegexValidator


def _format_characters() -> str:
    """Unicode's format characters (category Cf) in the Basic Multilingual Plane, as the
    inside of a regex class of \\u escapes: the zero-width and bidi controls, the soft
    hyphen, the byte-order mark and the rest. (The few beyond the BMP, such as tag
    characters, have no escape in the schema's ECMA-262 patterns; normalize_sku leaves
    them out of a SKU's identity all the same.)"""
    codes = [code for code in range(0x10000) if unicodedata.category(chr(code)) == "Cf"]
    ranges, start = [], codes[0]
    for previous, code in zip(codes, [*codes[1:], None], strict=True):
        if code != previous + 1:
            ranges.append(f"\\u{start:04x}" + (f"-\\u{previous:04x}" if previous > start else ""))
            start = code
    return "".join(ranges)


# Control characters (C0, DEL, C1) and the line and paragraph separators.
CONTROL = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
# Characters that show nothing: zero-width spaces and joiners, bidi controls, word
# joiners and invisible operators, the byte-order mark.
INVISIBLE = r"\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff"
FORMAT = _format_characters()  # INVISIBLE and the rest of category Cf

one_line_of_text = RegexValidator(
    rf"^[^{CONTROL}]*[^\s{CONTROL}{INVISIBLE}][^{CONTROL}]*\Z",
    "Must be one line of visible text, without control characters.",
)
no_nul_characters = RegexValidator(r"^[^\x00]*\Z", "Null characters are not allowed.")
# A SKU is one line of visible text with no format (invisible) characters at all: they
# are left out of its identity anyway (normalize_sku), so storing one would only make
# two labels that print the same look different here.
validate_sku = RegexValidator(
    rf"^[^{CONTROL}{FORMAT}]*[^\s{CONTROL}{FORMAT}][^{CONTROL}{FORMAT}]*\Z",
    "Must be one line of visible text, without control characters or invisible "
    "formatting characters (zero-width, bidi controls, byte-order mark).",
)


def normalize_sku(sku: str) -> str:
    """The identity of a SKU: two SKUs are the same product when these agree.

    Unicode compatibility caseless matching (NFKC of the case-folded text, as in
    Unicode's definition D146), with format characters (zero-width, bidi controls,
    byte-order mark) removed and white space trimmed, runs of it counting as one space.
    So `ABC-1`, `abc-1`, fullwidth `ＡＢＣ-1` and `ABC-1` with a zero-width space are one
    SKU; so are `STRASSE-1` and `straße-1`, `ΑΣ-1` and `ας-1`, and a decomposed and a
    composed `café`.
    """
    text = unicodedata.normalize("NFD", sku).casefold()
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKD", text).casefold())
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return " ".join(text.split())
