"""The names coursekit.data offers are the ones its modules define."""

from __future__ import annotations

import importlib

import pytest

import coursekit.data as data


@pytest.mark.parametrize("name", data.__all__)
def test_each_name_is_the_object_its_module_defines(name):
    module = importlib.import_module(f"coursekit.data.{data._WHERE[name]}")
    assert getattr(data, name) is getattr(module, name)


def test_an_unknown_name_raises_an_attribute_error_listing_the_known_ones():
    with pytest.raises(AttributeError, match="has no attribute 'Mnist'; it offers .*MNIST"):
        data.Mnist  # noqa: B018
