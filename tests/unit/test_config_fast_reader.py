"""The fast YAML reader (libyaml events → data, marks and bounds in one pass) must read
every document as the reference reader (PyYAML's bounded composer) does: the same data,
the same line for every key path it records, the same problems on the same lines.

Where they differ on purpose: inside an alias the fast reader records no lines of its own
(a problem there is reported at the alias); a key given next to a merge key (``<<``)
overrides the merged one instead of being a "duplicate key"; a scalar that cannot be
constructed is reported at its key path instead of "(yaml)"."""

from __future__ import annotations

import pytest
import yaml

from monitord.config import ConfigError
from monitord.config.reader import MAX_YAML_DEPTH, _read_fast, _read_full

pytestmark = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml")

DOCUMENTS = [
    "a: 1\nb: [1, 2, {c: d}]\n",
    "office: {name: 'x', area_code: '6202'}\nschools:\n  62020001: {name: ก, isp: TRUE}\n",
    "n: ~\ne:\nt: true\nf: False\ny: yes\no: on\nx: 0x1F\no8: 0o17\nfl: 1.5e3\ninf: .inf\n"
    "d: 2024-02-03\nts: 2024-02-03 10:00:00\nq: '12'\nqq: \"a\\tb\"\nlong: 1_000\n",
    "base: &b {interval: 30s, icmp: {count: 3}}\ndevices:\n  - <<: *b\n    id: a\n"
    "  - <<: *b\n    id: b\n    interval: 10s\n",
    "one: &o {a: 1}\ntwo: &t {a: 2, b: 2}\nm:\n  <<: [*o, *t]\n  c: 3\n",
    "list: &l [1, 2]\nagain: *l\nscalar: &s hello\nuse: *s\n",
    "tagged: !!str 5\nbin: !!binary aGVsbG8=\nfloat: !!float 3\n",
    "nested:\n  - - - a\n      - b\n    - c\n  - {x: [ {y: z} ]}\n",
    "block: |\n  line one\n  line two\nfolded: >\n  a\n  b\n",
    "",
    "# only a comment\n",
    "just a scalar\n",
    "- a\n- b\n",
    "a: 1\na: 2\nb: {c: 1, c: 2}\n",
    "a: *missing\n",
    "a: &r [*r]\n",
    "a: 1\n---\nb: 2\n",
    "a: [1, 2\n",
    "date: 2024-02-30\n",
    "big: " + "9" * 5000 + "\n",
    "s: !custom 5\n",
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
              for p, c in zip("abcdefgh", "bcdefghi", strict=False)),
    "x: " + "[" * (MAX_YAML_DEPTH + 5) + "]" * (MAX_YAML_DEPTH + 5) + "\n",
    "bad: \x07\n",
    "? [a, b]\n: complex key\n",
    "set: !!set {a, b}\n",
    "&k key: value\n",
]


def _outcome(read, text: str):  # type: ignore[no-untyped-def]
    try:
        doc = read(text, "f.yaml")
    except ConfigError as exc:
        return ("error", [(p.file, p.line, p.message) for p in exc.problems])
    return ("ok", doc.data, doc.marks)


@pytest.mark.parametrize("text", [d for d in DOCUMENTS if "<<" not in d])
def test_fast_reader_reads_like_the_reference(text: str) -> None:
    from monitord.config.reader import _Fallback

    try:
        fast = _outcome(_read_fast, text)
    except _Fallback:
        return  # handed to the reference reader: nothing to compare
    full = _outcome(_read_full, text)
    if fast[0] == "ok" and full[0] == "ok":
        assert fast[1] == full[1]
        assert {k: v for k, v in full[2].items() if k in fast[2]} == fast[2]
        aliased = [k for k in full[2] if k not in fast[2]]
        assert all("*" in text.splitlines()[full[2][k[:1]] - 1] for k in aliased)
    else:
        assert fast == full


@pytest.mark.parametrize("text", [d for d in DOCUMENTS if "<<" in d])
def test_merge_keys_read_as_yaml_says(text: str) -> None:
    assert _read_fast(text, "f.yaml").data == yaml.safe_load(text)


def test_fast_reader_takes_the_common_path() -> None:
    """An ordinary config never falls back (it would lose the speed silently)."""
    doc = _read_fast("office: {name: x}\ndevices:\n  - {id: a, address: 127.0.0.1}\n", "f")
    assert doc.data["devices"][0]["id"] == "a"
    assert doc.marks[("devices", 0)] == 3
