import pytest

from featx.config import LongText, Pooling, Representation


def test_plain_strings_are_converted_once():
    rep = Representation(pooling="cls", long_text="chunk_max", layers=-2)
    assert rep.pooling is Pooling.CLS
    assert rep.long_text is LongText.CHUNK_MAX
    assert rep.layers == (-2,)


def test_unknown_pooling_names_the_valid_values():
    with pytest.raises(ValueError, match=r"Unknown pooling 'avg'\. Valid values: 'mean', 'cls'"):
        Representation(pooling="avg")


@pytest.mark.parametrize("layers", [(), (1, 1), ("a",), 1.5, True])
def test_bad_layers_are_rejected(layers):
    with pytest.raises((TypeError, ValueError), match="layer"):
        Representation(layers=layers)


def test_round_trip_through_dict():
    rep = Representation(pooling="max", normalize=False, layers=(-4, -1), combine="concat")
    assert Representation.from_dict(rep.to_dict()) == rep


def test_updated_ignores_none():
    rep = Representation().updated(pooling=None, normalize=False)
    assert rep.pooling is Pooling.MEAN and rep.normalize is False
