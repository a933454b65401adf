"""Request bodies' serializers copy their plain fields shallowly: instances stay apart."""

from products.serializers import StockAdjustmentSerializer, StockChangeSerializer


def test_two_bodies_validated_at_once_keep_their_own_fields_and_errors():
    refused = StockChangeSerializer(data={"quantity": 0, "reason": "nonsense"})
    accepted = StockChangeSerializer(data={"quantity": 5, "reference": "SO-1"})

    assert not refused.is_valid()
    assert accepted.is_valid(), accepted.errors
    assert set(refused.errors) == {"quantity", "reason"}
    assert accepted.validated_data == {"quantity": 5, "reference": "SO-1"}
    for name in ("quantity", "reason", "reference"):
        assert refused.fields[name] is not accepted.fields[name]
        assert refused.fields[name].parent is refused
        assert accepted.fields[name].parent is accepted
        assert StockChangeSerializer._declared_fields[name].parent is None  # never bound


def test_a_field_holding_others_is_copied_deeply_and_bound_afresh():
    first = StockAdjustmentSerializer(data={"lines": [{"product": 1, "delta": 2}]})
    second = StockAdjustmentSerializer(data={"lines": [{"product": 1, "delta": 0}]})

    assert first.is_valid(), first.errors
    assert not second.is_valid()
    assert first.fields["lines"].child is not second.fields["lines"].child
    assert first.fields["lines"].child.root is first
    assert first.validated_data["lines"] == [{"product": 1, "delta": 2}]
