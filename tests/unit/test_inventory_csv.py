"""The inventory: ``include:`` in the config, and CSV import/export
(:mod:`monitord.config.inventory`): encodings, delimiters, Thai/English headers, every
validation with its spreadsheet row and column, skip-bad, upsert, round trip."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from monitord.config import ConfigError, load_config
from monitord.config.inventory import (
    InventoryError,
    RowProblem,
    decode,
    export_csv,
    find_inventory,
    import_csv,
)

MAIN = textwrap.dedent("""\
    office:
      name: สำนักงานเขตพื้นที่การศึกษาประถมศึกษากำแพงเพชร เขต 2
      area_code: "6202"
    include: [inventory.yaml]
    schools:
      "62020001":
        name: โรงเรียนบ้านหนองปลิง
        district: คลองขลุง
    devices:
      - id: r1
        school: "62020001"
        kind: router
        address: 127.0.0.1
    """)

SCHOOLS_TH = ("รหัส SMIS,ชื่อโรงเรียน,อำเภอ,ตำบล,ผู้ให้บริการอินเทอร์เน็ต,ละติจูด,ลองจิจูด,"
              "รหัส percode\n"
              "62020002,โรงเรียนบ้านคลองน้ำไหล,คลองลาน,คลองน้ำไหล,NT,16.15,99.31,040331\n"
              "62020003,โรงเรียนวัดโพธิ์,เมือง,,AIS Fibre,,,\n")


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    (tmp_path / "main.yaml").write_text(MAIN, encoding="utf-8")
    (tmp_path / "inventory.yaml").write_text("", encoding="utf-8")
    return tmp_path


def run(lab: Path, kind: str, text: str | bytes, **kw: object):  # type: ignore[no-untyped-def]
    data = text.encode("utf-8") if isinstance(text, str) else text
    return import_csv(lab / "main.yaml", kind, data, "in.csv", **kw)  # type: ignore[arg-type]


def problems(report) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    return [(p.row, p.column) for p in report.problems]


# -- include: -------------------------------------------------------------------------------

def test_include_merges_and_names_the_included_file(lab: Path) -> None:
    (lab / "inventory.yaml").write_text(textwrap.dedent("""\
        schools:
          "62020002": {name: B, district: D}
        devices:
          - {id: r2, kind: router, address: 127.0.0.2, school: "62020002"}
        """), encoding="utf-8")
    cfg = load_config(lab / "main.yaml").config
    assert set(cfg.schools) == {"62020001", "62020002"}
    assert [d.id for d in cfg.devices] == ["r1", "r2"]
    assert cfg.includes == (str(lab / "inventory.yaml"),)

    (lab / "inventory.yaml").write_text(textwrap.dedent("""\
        schools:
          "62020002": {name: B, district: D}
          "62020001": {name: again, district: D}
        devices:
          - {id: r2, kind: routr, address: 127.0.0.2, school: "62020009"}
          - {id: r1, kind: router, address: 127.0.0.3}
        office: {name: x}
        """), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(lab / "main.yaml")
    inv, main = str(lab / "inventory.yaml"), str(lab / "main.yaml")
    lines = [str(p) for p in err.value.problems]
    assert f"{inv}:3: schools.62020001: school 62020001 is defined twice: here and at " \
           f"{main}:6" in lines
    assert any(line.startswith(f"{inv}:5: devices[0].kind: ") for line in lines)
    assert f"{inv}:5: devices[0].school: unknown school '62020009'" in lines
    assert f"{inv}:6: devices[1].id: device 'r1' is defined twice: here and at " \
           f"{main}:10" in lines
    assert f"{inv}:7: office: an included file may hold only schools: and devices:" in lines


def test_include_missing_loop_twice_and_two_includes(lab: Path) -> None:
    main = lab / "main.yaml"
    main.write_text(MAIN.replace("include: [inventory.yaml]",
                                 "include: [inventory.yaml, main.yaml, nothere.yaml, "
                                 "inventory.yaml, other.yaml]"), encoding="utf-8")
    (lab / "other.yaml").write_text(
        'devices:\n  - {id: r1b, kind: switch, address: 127.0.0.9, parent: r1}\n'
        '  - {id: r1b, kind: switch, address: 127.0.0.8}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(main)
    text = "\n".join(str(p) for p in err.value.problems)
    assert "'main.yaml' is this config itself (an include loop)" in text
    assert "cannot read 'nothere.yaml': No such file or directory" in text
    assert "'inventory.yaml' is already included (include[0])" in text
    other = str(lab / "other.yaml")
    assert f"{other}:3: devices[1].id: device 'r1b' is defined twice: here and at " \
           f"{other}:2" in text
    main.write_text(MAIN.replace("include: [inventory.yaml]", "include: [other.yaml]"),
                    encoding="utf-8")
    (lab / "other.yaml").write_text("include: [inventory.yaml]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="includes do not nest"):
        load_config(main)


def test_empty_inventory_and_single_string_include(lab: Path) -> None:
    (lab / "main.yaml").write_text(MAIN.replace("[inventory.yaml]", "inventory.yaml"),
                                   encoding="utf-8")
    (lab / "inventory.yaml").write_text("# nothing yet\n", encoding="utf-8")
    assert len(load_config(lab / "main.yaml").config.schools) == 1


def test_find_inventory(lab: Path) -> None:
    assert find_inventory(lab / "main.yaml") == str(lab / "inventory.yaml")
    (lab / "main.yaml").write_text(MAIN.replace("include: [inventory.yaml]\n", ""),
                                   encoding="utf-8")
    with pytest.raises(InventoryError, match=r"add `include: \[inventory.yaml\]`"):
        find_inventory(lab / "main.yaml")
    (lab / "main.yaml").write_text(MAIN.replace("[inventory.yaml]", "[a.yaml, inventory-x.yaml]"),
                                   encoding="utf-8")
    assert find_inventory(lab / "main.yaml") == str(lab / "inventory-x.yaml")
    assert find_inventory(lab / "main.yaml", "a.yaml") == str(lab / "a.yaml")
    (lab / "main.yaml").write_text(MAIN.replace("[inventory.yaml]", "[a.yaml, b.yaml]"),
                                   encoding="utf-8")
    with pytest.raises(InventoryError, match="--inventory"):
        find_inventory(lab / "main.yaml")


# -- reading --------------------------------------------------------------------------------

def test_encodings() -> None:
    text = "ชื่อโรงเรียน\nบ้านหนองปลิง\n"
    assert decode(text.encode("utf-8")) == (text, "UTF-8")
    assert decode(b"\xef\xbb\xbf" + text.encode("utf-8")) == (text, "UTF-8 (BOM)")
    assert decode(text.encode("cp874")) == (text, "Windows-874")
    assert decode(text.encode("tis-620")) == (text, "Windows-874")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp874"])
@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_thai_headers_encodings_delimiters(lab: Path, encoding: str, delimiter: str) -> None:
    data = SCHOOLS_TH.replace(",", delimiter).encode(encoding)
    report = run(lab, "schools", data)
    assert report.problems == []
    assert report.added == ["62020002", "62020003"]
    assert report.applied
    cfg = load_config(lab / "main.yaml").config
    s = cfg.schools["62020002"]
    assert (s.name, s.district, s.subdistrict, s.isp, s.percode) == (
        "โรงเรียนบ้านคลองน้ำไหล", "คลองลาน", "คลองน้ำไหล", "NT", "040331")
    assert s.location is not None and (s.location.lat, s.location.lon) == (16.15, 99.31)
    assert report.encoding == {"utf-8": "UTF-8", "utf-8-sig": "UTF-8 (BOM)",
                               "cp874": "Windows-874"}[encoding]


def test_english_headers_any_case_and_spacing(lab: Path) -> None:
    report = run(lab, "schools", " SMIS , School Name,DISTRICT,Sub District,ISP,Latitude,"
                 "Longitude, PerCode\n62020002,A,B,C,NT,16,99,040331\n")
    assert report.problems == [] and report.added == ["62020002"]


def test_header_problems_one_per_kind(lab: Path) -> None:
    report = run(lab, "schools", "smis,ชื่อโรงเรียน,colour,size\n62020002,A,\n")
    by_column = {p.column: p for p in report.problems}
    assert set(by_column) == {"colour, size", "district"}
    assert all(p.row == 1 for p in report.problems)
    assert by_column["colour, size"] == RowProblem(1, "colour, size",
                                                   by_column["colour, size"].message)
    assert "unknown columns" in by_column["colour, size"].message
    assert "required column missing" in by_column["district"].message
    assert not report.applied
    # skip-bad cannot skip the header
    assert not run(lab, "schools", "smis,ชื่อโรงเรียน,colour\n62020002,A\n",
                   skip_bad=True).applied


# -- validation -----------------------------------------------------------------------------

def test_school_rows_each_rule_with_row_numbers(lab: Path) -> None:
    csv = ("smis,name,district,lat,lon,percode\n"
           "62020002,ok,D,16.1,99.2,040331\n"       # 2
           "6202003,short,D,,,\n"                    # 3: 7 digits
           "\n"                                      # 4: blank (counted, skipped)
           "62020004,,D,,,\n"                        # 5: name empty
           "62020005,lat,D,95,99,\n"                 # 6: lat out of range
           "62020006,lon,D,16,181,\n"                # 7: lon out of range
           "62020007,half,D,16,,\n"                  # 8: lat without lon
           "62020008,pc,D,,,40331\n"                 # 9: percode 5 digits
           "62020009,dup,D,,,\n"                     # 10: duplicate (with 11)
           "62020009,dup,D,,,\n"                     # 11
           "62020010,nan,D,x,99,\n")                 # 12: not a number
    report = run(lab, "schools", csv)
    assert problems(report) == [(3, "smis"), (5, "name"), (6, "lat"), (7, "lon"),
                                (8, "lon"), (9, "percode"), (10, "smis"), (11, "smis"),
                                (12, "lat")]
    messages = {p.row: p.message for p in report.problems}
    assert "leading zero" in messages[3]
    assert messages[10] == "'62020009' is also in row 11"
    assert messages[11] == "'62020009' is also in row 10"
    assert not report.applied and (lab / "inventory.yaml").read_text() == ""


def test_school_warnings_outside_thailand_and_other_area(lab: Path) -> None:
    report = run(lab, "schools", "smis,name,district,lat,lon\n62020002,a,D,35.6,139.7\n"
                 "10010001,b,D,,\n")
    assert report.problems == [] and report.applied
    assert [(w.row, w.column) for w in report.warnings] == [(2, "lat"), (3, "smis")]
    assert "outside Thailand" in report.warnings[0].message


def test_device_rows_each_rule(lab: Path) -> None:
    csv = ("school,id,kind,ชื่ออุปกรณ์,ที่อยู่ IP,parent,ยี่ห้อ/รุ่น,หมายเลขเครื่อง\n"
           "62020001,sw1,switch,สวิตช์,127.0.0.5,r1,TP-Link,SN1\n"   # 2 ok
           "62020001,ap1,access_point,AP,ap1.school.local,sw1,,\n"  # 3 ok (parent in CSV)
           "62020001,tv1,television,TV,127.0.0.6,,,\n"              # 4 unknown kind
           "62020001,tv2,tv,TV,not an address!,,,\n"                # 5 bad address
           "62029999,tv3,tv,TV,127.0.0.7,,,\n"                      # 6 unknown school
           "62020001,tv4,tv,TV,127.0.0.8,nosuch,,\n"                # 7 unknown parent
           "62020001,tv5,tv,TV,127.0.0.9,tv5,,\n"                   # 8 own parent
           ",10.0.0.1,server,S,127.0.0.10,,,\n"                     # 9 id is an IP
           ",,server,S,127.0.0.11,,,\n")                            # 10 no id
    report = run(lab, "devices", csv)
    assert problems(report) == [(4, "kind"), (5, "address"), (6, "school"), (7, "parent"),
                                (8, "parent"), (9, "id"), (10, "id")]
    msg = {p.row: p.message for p in report.problems}
    assert msg[4].startswith("unknown kind 'television'")
    assert "neither an IP address nor a valid host name" in msg[5]
    assert msg[6].startswith("unknown school '62029999'")
    assert msg[7] == "unknown device 'nosuch'"
    assert report.added == ["sw1", "ap1"] and not report.applied


def test_skip_bad_applies_good_rows_and_lists_skipped(lab: Path) -> None:
    csv = ("smis,name,district\n62020002,a,D\nbad,b,D\n62020004,c,\n62020005,e,D\n")
    report = run(lab, "schools", csv, skip_bad=True)
    assert report.skipped == [3, 4] and report.ok and report.applied
    assert report.added == ["62020002", "62020005"]
    assert set(load_config(lab / "main.yaml").config.schools) == {
        "62020001", "62020002", "62020005"}


def test_missing_inventory_file_is_created(lab: Path) -> None:
    (lab / "inventory.yaml").unlink()
    assert run(lab, "schools", SCHOOLS_TH, dry_run=True).added == ["62020002", "62020003"]
    assert not (lab / "inventory.yaml").exists()
    assert run(lab, "schools", SCHOOLS_TH).applied
    assert len(load_config(lab / "main.yaml").config.schools) == 3
    assert not (lab / "inventory.yaml.bak").exists()


def test_dry_run_writes_nothing(lab: Path) -> None:
    report = run(lab, "schools", SCHOOLS_TH, dry_run=True)
    assert report.added == ["62020002", "62020003"] and not report.applied
    assert (lab / "inventory.yaml").read_text() == ""


# -- upsert, round trip ----------------------------------------------------------------------

def test_upsert_keeps_other_keys_and_entries(lab: Path) -> None:
    (lab / "inventory.yaml").write_text(textwrap.dedent("""\
        schools:
          "62020002": {name: old, district: D, schedule: always}
          "62020003": {name: stays, district: D}
        devices:
          - id: sw9
            school: "62020002"
            kind: switch
            address: 127.0.0.20
            probes: [icmp, snmp]
            snmp: {community: public}
        """), encoding="utf-8")
    report = run(lab, "schools", "smis,name,district\n62020002,new,D\n62020004,added,D\n")
    assert report.applied and report.changed == ["62020002"] and report.added == ["62020004"]
    cfg = load_config(lab / "main.yaml").config
    assert cfg.schools["62020002"].name == "new"
    assert cfg.schools["62020002"].schedule == "always"   # a key the CSV has no column for
    assert cfg.schools["62020003"].name == "stays"        # a key not in the CSV
    assert "name: old" in (lab / "inventory.yaml.bak").read_text()
    report = run(lab, "devices", "id,kind,address,serial\nsw9,switch,127.0.0.21,SN9\n")
    assert report.changed == ["sw9"]
    dev = load_config(lab / "main.yaml").config.device_map()["sw9"]
    assert (dev.address, dev.serial, dev.probe_names, dev.school) == (
        "127.0.0.21", "SN9", ["icmp", "snmp"], "62020002")
    assert not list(lab.glob(".inventory-*"))  # no temporary file left


def test_main_config_entries(lab: Path) -> None:
    same = run(lab, "schools", "smis,name,district\n62020001,โรงเรียนบ้านหนองปลิง,คลองขลุง\n")
    assert same.problems == [] and same.unchanged == 1 and not same.applied
    other = run(lab, "schools", "smis,name,district\n62020001,renamed,คลองขลุง\n")
    assert problems(other) == [(2, "smis")]
    assert f"is defined in {lab / 'main.yaml'}: change it there" in other.problems[0].message


def test_result_that_would_not_load_is_not_written(lab: Path) -> None:
    # each row is fine on its own; together they make a parent cycle
    report = run(lab, "devices", "id,kind,address,parent\na,switch,127.0.0.30,b\n"
                 "b,switch,127.0.0.31,a\n")
    assert report.problems == [] and not report.applied
    assert any("parent cycle" in p for p in report.config_problems)
    assert (lab / "inventory.yaml").read_text() == ""


def test_round_trip(lab: Path) -> None:
    assert run(lab, "schools", SCHOOLS_TH).applied
    assert run(lab, "devices", "school,id,kind,name,address,parent,brand_model,serial\n"
               "62020002,sw2,switch,สวิตช์ ห้องคอม,127.0.0.40,r1,\"TP-Link, T1600\",SN-2\n"
               ",srv1,server,=SUM(1) เครื่องแม่ข่าย,srv1.office.local,,,\n").applied
    inventory = (lab / "inventory.yaml").read_bytes()
    stat = os.stat(lab / "inventory.yaml")
    for kind in ("schools", "devices"):
        exported = export_csv(lab / "main.yaml", kind)
        assert exported.startswith(b"\xef\xbb\xbf")
        report = run(lab, kind, exported)
        assert report.problems == [] and not report.added and not report.changed
        assert report.unchanged == report.rows and not report.applied
        assert export_csv(lab / "main.yaml", kind) == exported
    assert (lab / "inventory.yaml").read_bytes() == inventory
    assert os.stat(lab / "inventory.yaml").st_mtime_ns == stat.st_mtime_ns
    text = export_csv(lab / "main.yaml", "devices").decode("utf-8-sig")
    assert text.splitlines()[0] == ("school,id,kind,name,address,parent,hostname,"
                                    "brand_model,serial,unit")
    assert '62020002,sw2,switch,สวิตช์ ห้องคอม,127.0.0.40,r1,,"TP-Link, T1600",SN-2,' in text
    # a name a spreadsheet would run as a formula leaves with a guard, comes back without
    assert ",srv1,server,'=SUM(1) เครื่องแม่ข่าย," in text


def test_export_guards_formulas_and_import_takes_the_guard_off() -> None:
    """A name a spreadsheet would run as a formula is exported with a leading quote
    (CSV injection) and imported back as it was."""
    from monitord.config.inventory import guard, unguard

    for text in ("=HYPERLINK(\"http://x\")", "+66 55 123", "-1", "@SUM(A1)"):
        assert guard(text) == "'" + text and unguard(guard(text)) == text
    for text in ("โรงเรียนบ้านทดสอบ", "'quoted", "62020001", ""):
        assert guard(text) == text and unguard(text) == text
