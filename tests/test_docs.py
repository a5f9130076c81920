"""The public API's documentation: its examples run, and it documents every argument there is."""

from __future__ import annotations

import doctest
import inspect
import re

import pytest

import gan_stretch
from gan_stretch.models import model_file as model

API = {
    "stretch": gan_stretch.stretch,
    "Stretcher": gan_stretch.Stretcher,
    "Stretcher.stretch": gan_stretch.Stretcher.stretch,
    "Stretcher.stretch_file": gan_stretch.Stretcher.stretch_file,
    "load_model": model.load_model,
}


@pytest.mark.parametrize("name", sorted(API))
def test_api_examples_run(name):
    """Each object's Examples section, run as a doctest: the shapes, lengths and errors it
    shows are what the code gives."""
    tests = doctest.DocTestFinder(recurse=False).find(API[name], name, globs={})
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted >= 2, f"{name} has no runnable examples"
    assert result.failed == 0, f"{result.failed} example(s) of {name} failed (see the output above)"


def documented_parameters(doc: str) -> list[str]:
    """Names listed in a numpydoc Parameters section ("name : type" or "a, b, c" lines)."""
    section = re.search(r"Parameters\n\s*-+\n(.*?)(?:\n\s*\n\s*[A-Z][a-z]+( [A-Z][a-z]+)?\n\s*-+\n|\Z)", doc, re.S)
    assert section, "no Parameters section"
    lines = section.group(1).splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    names = []
    for line in lines:
        if line.strip() and len(line) - len(line.lstrip()) == indent:
            names += [n.strip() for n in line.split(" : ")[0].split(",")]
    return names


@pytest.mark.parametrize("name", sorted(API))
def test_api_documents_every_argument_and_what_it_raises(name):
    obj = API[name]
    doc = inspect.getdoc(obj)
    target = obj.__init__ if inspect.isclass(obj) else obj
    arguments = [p for p in inspect.signature(target).parameters if p != "self"]
    assert documented_parameters(doc) == arguments
    for section in ("Raises", "Examples") + (() if inspect.isclass(obj) else ("Returns",)):
        assert f"\n{section}\n" in doc, f"{name} has no {section} section"
    raised = re.findall(r"^(\w+Error)$", doc.split("Raises", 1)[1], re.M)
    from gan_stretch import errors

    assert raised and all(issubclass(getattr(errors, e), errors.GanStretchError) for e in raised)
