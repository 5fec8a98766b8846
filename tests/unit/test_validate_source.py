"""What an upload is checked for before it is stored, and what the team is told."""

import codecs

import pytest

from portal.submissions.service import InvalidSubmission, validate_source

LIMIT = 1024


def refusal(filename: str, content: bytes) -> InvalidSubmission:
    with pytest.raises(InvalidSubmission) as refused:
        validate_source(filename, content, LIMIT)
    return refused.value


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("solution.py", b"print('hello')\n"),
        ("SOLUTION.PY", b"print('hello')\n"),
        ("solution.py", codecs.BOM_UTF8 + b"print('saved by a Windows editor')\n"),
        ("solution.py", "print('héllo 😀')\n".encode()),
        ("solution.py", b"#" * LIMIT),
    ],
)
def test_a_python_file_within_the_limit_is_accepted(filename, content):
    validate_source(filename, content, LIMIT)


@pytest.mark.parametrize("filename", ["solution.txt", "solution.py.txt", "solution"])
def test_a_file_not_named_py_is_refused_by_its_name(filename):
    error = refusal(filename, b"print('hello')\n")
    assert error.code == "not_python_file"
    assert error.message == f"'{filename}' is not a Python file: the name must end in .py."


def test_a_file_without_a_name_is_called_no_name():
    assert refusal("", b"x = 1\n").message == (
        "'(no name)' is not a Python file: the name must end in .py."
    )


@pytest.mark.parametrize("content", [b"", codecs.BOM_UTF8])
def test_an_empty_file_is_refused_even_with_a_byte_order_mark(content):
    error = refusal("solution.py", content)
    assert error.code == "empty_file"
    assert error.message == "The file is empty. Upload a .py file with your solution."


def test_a_file_over_the_limit_is_refused_with_the_limit_in_readable_units():
    error = refusal("solution.py", b"#" * (LIMIT + 1))
    assert (error.code, error.status_code) == ("payload_too_large", 413)
    assert error.message == (
        "The file is larger than the 1 KiB limit (PORTAL_MAX_UPLOAD_BYTES). Upload a smaller file."
    )


def test_a_nul_byte_is_refused_with_its_position():
    error = refusal("solution.py", b"x = 1\x00\n")
    assert error.code == "nul_byte"
    assert error.message == (
        "The file contains a NUL byte (at byte 5); a Python source file cannot."
    )


def test_bytes_that_are_not_utf8_are_refused_with_their_line():
    error = refusal("solution.py", b"x = 1\ny = 2\nname = '\xe9'\n")
    assert error.code == "not_utf8"
    assert error.details == {"line": 3, "byte": 20}
    assert error.message == "The file is not valid UTF-8 (line 3, byte 20). Save it as UTF-8."


@pytest.mark.parametrize("bom", [b"", codecs.BOM_UTF8])
def test_a_syntax_error_is_refused_with_the_line_the_editor_shows(bom):
    error = refusal("solution.py", bom + b"import sys\n\ndef solve(:\n    pass\n")
    assert error.code == "syntax_error"
    assert error.details["line"] == 3
    assert error.message.startswith("Python syntax error on line 3: ")


def test_the_first_rule_a_person_would_fix_is_the_one_reported():
    # Wrong name and a NUL byte: renaming comes first, so that is what the team hears.
    assert refusal("notes.txt", b"\x00").code == "not_python_file"
    # A NUL byte in invalid UTF-8 with broken syntax: the NUL byte is named.
    assert refusal("solution.py", b"\xff\x00 def (").code == "nul_byte"
