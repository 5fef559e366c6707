"""Bounded YAML reading with the line of every key path.

A hostile or broken file (an alias bomb, thousands of nested brackets, a huge file) is
rejected in well under a second; every failure is a :class:`ConfigError` with a line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NoReturn

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from monitord.config.problems import MESSAGE_LIMIT, ConfigError, KeyPath, Problem, format_path
from monitord.values import one_line

# Bounds on what the YAML loader accepts, so that a hostile or broken file (an alias
# bomb, thousands of nested brackets, a huge file) is rejected in well under a second
# instead of eating memory and CPU.  A real office (3,000 devices) needs ~60,000 nodes,
# depth 7 and under 1 MiB; a province of 20,000 devices ~400,000 nodes and 3.5 MiB
# (these bounds leave room for about 40,000 devices).
MAX_CONFIG_BYTES = 10 * 1024 * 1024
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 1_000_000  # counting every use of an alias with the size of what it names
MAX_YAML_ALIASES = 20_000


class _BoundedComposer(Composer):
    """SafeLoader with YAML 1.2 booleans (only true/false) and bounds on the document.

    YAML 1.1 also reads yes/no/on/off/TRUE as booleans, which turns an ISP named
    ``TRUE`` into ``True`` (the "Norway problem").

    The composer is bounded: nesting depth, the number of aliases, and the number of
    nodes counting each alias as the size of the node it names (so an alias bomb, tiny
    on disk but exponential once expanded, fails after a few levels); an alias inside
    the node it names (a recursive structure) is refused.  Constructing a scalar that
    Python refuses (``2024-02-30``, an integer of 5,000 digits) becomes a YAML error at
    that node instead of a bare ``ValueError``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._path: list[str | int] = []
        self._nodes = 0
        self._aliases = 0
        self._sizes: dict[int, int] = {}  # id(anchored node) → its expanded size
        #: where the document broke a bound, or the node Python could not construct
        self.refused_at: KeyPath | None = None
        self.bad_node: yaml.Node | None = None

    def _refuse(self, message: str, mark: Any) -> NoReturn:
        self.refused_at = tuple(p for p in self._path if p != "")
        raise yaml.composer.ComposerError(None, None, message, mark)

    def _count(self, size: int, mark: Any) -> None:
        self._nodes += size
        if self._nodes > MAX_YAML_NODES:
            self._refuse(f"more than {MAX_YAML_NODES} values (counting every use of an "
                         "alias in full): an alias bomb or a runaway file", mark)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[attr-defined]
        if isinstance(parent, yaml.MappingNode) and isinstance(index, yaml.ScalarNode):
            self._path.append(str(index.value))
        elif isinstance(parent, yaml.SequenceNode) and isinstance(index, int):
            self._path.append(index)
        else:  # the document root, or a mapping key (reported at its mapping)
            self._path.append("")
        try:
            if isinstance(event, yaml.AliasEvent):
                target = self.anchors.get(event.anchor)
                if target is not None:  # an undefined alias is the composer's error
                    size = self._sizes.get(id(target))
                    if size is None:
                        self._refuse(f"alias *{event.anchor} is used inside the node it "
                                     "names (a recursive structure)", event.start_mark)
                    self._aliases += 1
                    if self._aliases > MAX_YAML_ALIASES:
                        self._refuse(f"more than {MAX_YAML_ALIASES} aliases",
                                     event.start_mark)
                    self._count(size, event.start_mark)
                return super().compose_node(parent, index)
            if len(self._path) > MAX_YAML_DEPTH:
                self._refuse(f"nested more than {MAX_YAML_DEPTH} levels deep",
                             event.start_mark)
            before = self._nodes
            self._count(1, event.start_mark)
            node = super().compose_node(parent, index)
            if getattr(event, "anchor", None) is not None:
                self._sizes[id(node)] = self._nodes - before
            return node
        finally:
            self._path.pop()


class _CheckedConstructor(SafeConstructor):
    """Constructing a scalar that Python refuses becomes a YAML error at that node."""

    bad_node: yaml.Node | None = None

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # ValueError of a date or a long integer, OverflowError
            self.bad_node = node
            what = node.tag.rsplit(":", 1)[-1]
            value = node.value if isinstance(node, yaml.ScalarNode) else ""
            shown = value if len(value) <= 40 else f"{value[:20]}… ({len(value)} characters)"
            raise yaml.constructor.ConstructorError(
                None, None,
                one_line(f"cannot read {what} {shown}: " + str(exc).split("; use sys.", 1)[0],
                         MESSAGE_LIMIT),
                node.start_mark
            ) from None


class BoundedLoader(Reader, Scanner, Parser, _BoundedComposer, _CheckedConstructor, Resolver):
    """The reference reader: PyYAML's pure-Python scanner, parser and (bounded) composer.
    :class:`FastReader` reads ordinary files through libyaml and hands everything else
    (errors included) to this one, so a problem is always reported in its words."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _BoundedComposer.__init__(self)
        _CheckedConstructor.__init__(self)
        Resolver.__init__(self)


BoundedLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|false|False)$"), list("tTfF")
)


class _Yaml12Resolver(Resolver):
    """The loader's scalar types (YAML 1.2 booleans) for the fast reader."""


_Yaml12Resolver.yaml_implicit_resolvers = BoundedLoader.yaml_implicit_resolvers


class _Fallback(Exception):
    """Something the fast reader leaves to the full loader (explicit collection tags,
    keys that are collections, any error)."""


_MERGE = "tag:yaml.org,2002:merge"
_STR = "tag:yaml.org,2002:str"
_MAP_TAGS = (None, "tag:yaml.org,2002:map", "!")
_SEQ_TAGS = (None, "tag:yaml.org,2002:seq", "!")


class _Frame:
    __slots__ = ("anchor", "before", "data", "key", "key_line", "merges", "path_len", "seen")

    def __init__(self, data: Any, anchor: str | None, before: int, path_len: int) -> None:
        self.data = data
        self.anchor = anchor
        self.before = before
        self.path_len = path_len
        self.key: Any = _NO_KEY
        self.key_line = 0
        self.merges: list[Any] = []
        self.seen: set[str] = set()


_NO_KEY = object()


class FastReader:
    """Builds the document straight from libyaml's events: no node tree, the marks and
    the bounds in the same pass (a 20,000-device file in ~1.5 s instead of ~6 s).

    Same data and bounds as :class:`BoundedLoader` (which stays the reference: the
    fast reader hands anything unusual to it — explicit collection tags, collection
    keys); duplicate keys are found among the keys written (merge keys may override).
    """

    def __init__(self, text: str) -> None:
        from yaml._yaml import CParser  # only built when libyaml is there

        self._parser = CParser(text)
        self._scalars = _CheckedConstructor()
        self._resolver = _Yaml12Resolver()
        self._resolvers = _Yaml12Resolver.yaml_implicit_resolvers
        self.marks: dict[KeyPath, int] = {}
        self.dups: list[tuple[KeyPath, int]] = []
        self.refused_at: KeyPath | None = None

    def _refuse(self, path: list[str | int], message: str, mark: Any) -> NoReturn:
        self.refused_at = tuple(path)
        raise yaml.composer.ComposerError(None, None, message, mark)

    def _scalar(self, ev: Any) -> Any:
        value: str = ev.value
        tag = ev.tag
        if tag is None or tag == "!":
            if tag == "!" or not ev.implicit[0]:
                return value  # quoted, or the non-specific tag: a string
            if value and value[0] not in self._resolvers:
                return value
            tag = self._resolver.resolve(yaml.ScalarNode, value, ev.implicit)  # type: ignore[no-untyped-call]
            if tag == _STR:
                return value
        node = yaml.ScalarNode(tag, value, ev.start_mark, ev.end_mark, ev.style)
        if tag == _MERGE:
            return _MERGE_KEY
        return self._scalars.construct_object(node)

    def read(self) -> Any:
        get = self._parser.get_event
        marks, dups = self.marks, self.dups
        path: list[str | int] = []
        stack: list[_Frame] = []
        anchors: dict[str, Any] = {}
        sizes: dict[str, int] = {}
        open_anchors: set[str] = set()
        nodes = aliases = 0
        root: Any = None
        done = False
        ScalarEvent, AliasEvent = yaml.ScalarEvent, yaml.AliasEvent
        MapStart, SeqStart = yaml.MappingStartEvent, yaml.SequenceStartEvent
        MapEnd, SeqEnd = yaml.MappingEndEvent, yaml.SequenceEndEvent
        for _ in range(MAX_YAML_NODES * 4 + 16):  # events: bounded by the node bound
            ev: Any = get()
            cls = ev.__class__
            frame = stack[-1] if stack else None
            # a mapping waiting for its key: this event is the key
            if frame is not None and frame.key is _NO_KEY and cls is not MapEnd \
                    and type(frame.data) is dict:
                if cls is not ScalarEvent or ev.anchor is not None:
                    raise _Fallback("a key that is not a plain scalar")
                nodes += 1
                key = self._scalar(ev)
                frame.key = key
                frame.key_line = ev.start_mark.line + 1
                if key is not _MERGE_KEY:
                    name = str(key)
                    kpath = (*path, name)
                    if name in frame.seen:
                        dups.append((kpath, frame.key_line))
                    frame.seen.add(name)
                    marks[kpath] = frame.key_line
                continue
            if cls is ScalarEvent or cls is AliasEvent or cls is MapStart or cls is SeqStart:
                # a value: where it goes
                if frame is not None:
                    if type(frame.data) is dict:
                        k = frame.key
                        path.append("<<" if k is _MERGE_KEY else str(k))
                    else:
                        path.append(len(frame.data))
                        marks[tuple(path)] = ev.start_mark.line + 1
                if len(path) > MAX_YAML_DEPTH:
                    self._refuse(path, f"nested more than {MAX_YAML_DEPTH} levels deep",
                                 ev.start_mark)
                if cls is AliasEvent:
                    name = ev.anchor
                    if name in open_anchors:
                        self._refuse(path, f"alias *{name} is used inside the node it names "
                                     "(a recursive structure)", ev.start_mark)
                    if name not in anchors:
                        raise yaml.composer.ComposerError(
                            None, None, f"found undefined alias {name!r}", ev.start_mark)
                    aliases += 1
                    if aliases > MAX_YAML_ALIASES:
                        self._refuse(path, f"more than {MAX_YAML_ALIASES} aliases",
                                     ev.start_mark)
                    nodes += sizes[name]
                    if nodes > MAX_YAML_NODES:
                        self._refuse(path, f"more than {MAX_YAML_NODES} values (counting "
                                     "every use of an alias in full): an alias bomb or a "
                                     "runaway file", ev.start_mark)
                    value = anchors[name]
                    if frame is None:
                        root = value
                elif cls is ScalarEvent:
                    nodes += 1
                    if nodes > MAX_YAML_NODES:
                        self._refuse(path, f"more than {MAX_YAML_NODES} values (counting "
                                     "every use of an alias in full): an alias bomb or a "
                                     "runaway file", ev.start_mark)
                    try:
                        value = self._scalar(ev)
                    except yaml.constructor.ConstructorError:
                        self.refused_at = tuple(path)
                        raise
                    if value is _MERGE_KEY:
                        value = "<<"
                    if ev.anchor is not None:
                        anchors[ev.anchor], sizes[ev.anchor] = value, 1
                    if frame is None:
                        root = value
                else:  # a collection starts
                    if ev.tag not in (_MAP_TAGS if cls is MapStart else _SEQ_TAGS):
                        raise _Fallback(f"explicit tag {ev.tag}")
                    nodes += 1
                    if frame is None:
                        marks.setdefault((), ev.start_mark.line + 1)
                    else:
                        marks.setdefault(tuple(path), ev.start_mark.line + 1)
                    if ev.anchor is not None:
                        open_anchors.add(ev.anchor)
                    stack.append(_Frame({} if cls is MapStart else [], ev.anchor,
                                        nodes - 1, len(path)))
                    continue
                self._place(frame, value, path)
                continue
            if cls is MapEnd or cls is SeqEnd:
                done_frame = stack.pop()
                data: Any = done_frame.data
                if done_frame.merges:
                    explicit = dict(data)
                    data.clear()
                    for source in done_frame.merges:
                        data.update(source)
                    data.update(explicit)
                if done_frame.anchor is not None:
                    open_anchors.discard(done_frame.anchor)
                    anchors[done_frame.anchor] = data
                    sizes[done_frame.anchor] = nodes - done_frame.before
                parent = stack[-1] if stack else None
                if parent is None:
                    root = data
                else:
                    self._place(parent, data, path)
                continue
            if cls is yaml.DocumentStartEvent:
                if done:
                    raise yaml.composer.ComposerError(
                        "expected a single document in the stream", None,
                        "but found another document", ev.start_mark)
                continue
            if cls is yaml.DocumentEndEvent:
                done = True
                continue
            if cls is yaml.StreamEndEvent:
                return root
        raise yaml.composer.ComposerError(None, None, "too many events", None)

    @staticmethod
    def _place(frame: _Frame | None, value: Any, path: list[str | int]) -> None:
        if frame is None:
            return
        data: Any = frame.data
        if type(data) is dict:
            if frame.key is _MERGE_KEY:
                sources = value if isinstance(value, list) else [value]
                if not all(isinstance(v, dict) for v in sources):
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", None,
                        "expected a mapping or list of mappings for merging", None)
                frame.merges.extend(reversed(sources))
            else:
                try:
                    data[frame.key] = value
                except TypeError:
                    raise _Fallback("an unhashable key") from None
            frame.key = _NO_KEY
        else:
            data.append(value)
        del path[frame.path_len:]


_MERGE_KEY = object()


def _walk_marks(
    node: yaml.Node, path: KeyPath, marks: dict[KeyPath, int], dups: list[tuple[KeyPath, int]]
) -> None:
    """Record the line of every key path; collect duplicate mapping keys."""
    marks.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                dups.append(((*path, key), line))
            seen.add(key)
            marks[(*path, key)] = line
            _walk_marks(value_node, (*path, key), marks, dups)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            marks[(*path, i)] = item.start_mark.line + 1
            _walk_marks(item, (*path, i), marks, dups)


@dataclass
class Doc:
    """A parsed config: its data and the line of every key path.

    After :func:`merge_includes` the data also holds the schools and devices of the
    included files: ``device_origin`` maps a merged device index to (file, index in that
    file) and ``school_origin`` a school's code to its file, so that a problem about them
    names the included file, its line and its own key path.
    """

    file: str
    data: Any
    marks: dict[KeyPath, int] = field(default_factory=dict)
    device_origin: dict[int, tuple[str, int]] = field(default_factory=dict)
    school_origin: dict[str, str] = field(default_factory=dict)
    #: the included files, as named in problems (joined to the config's directory)
    includes: list[str] = field(default_factory=list)

    def line(self, path: KeyPath) -> int:
        for n in range(len(path), -1, -1):
            prefix = tuple(str(p) if not isinstance(p, int) else p for p in path[:n])
            if prefix in self.marks:
                return self.marks[prefix]
        return 1

    def where(self, path: KeyPath) -> tuple[str, KeyPath]:
        """The file a key path comes from and the path as written in that file."""
        if len(path) >= 2 and path[0] == "devices" and isinstance(path[1], int):
            origin = self.device_origin.get(path[1])
            if origin is not None:
                return origin[0], ("devices", origin[1], *path[2:])
        if len(path) >= 2 and path[0] == "schools":
            school_file = self.school_origin.get(str(path[1]))
            if school_file is not None:
                return school_file, path
        return self.file, path

    def problem(self, path: KeyPath, message: str, warning: bool = False) -> Problem:
        file, local = self.where(path)
        return Problem(file, self.line(path), format_path(local), message, warning)


def _str_keys(data: Any) -> Any:
    """Mapping keys as strings: ``62020001:`` is an SMIS code, not a number."""
    if isinstance(data, dict):
        return {str(k): _str_keys(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_str_keys(v) for v in data]
    return data


def _node_path(root: yaml.Node, target: yaml.Node) -> KeyPath | None:
    """The key path of ``target`` in the composed tree (for errors found constructing)."""
    seen: set[int] = set()
    todo: list[tuple[yaml.Node, KeyPath]] = [(root, ())]
    while todo:
        node, path = todo.pop()
        if node is target:
            return path
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            todo += [(v, (*path, str(k.value))) for k, v in node.value]
        elif isinstance(node, yaml.SequenceNode):
            todo += [(v, (*path, i)) for i, v in enumerate(node.value)]
    return None


def read_yaml(text: str, file: str) -> Doc:
    """Parse within the loader's bounds; every failure is a ConfigError with a line."""
    if yaml.__with_libyaml__:
        try:
            return _read_fast(text, file)
        except _Fallback:
            pass
    return _read_full(text, file)


def _yaml_problem(exc: yaml.YAMLError, text: str, file: str,
                  path: KeyPath | None) -> ConfigError:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return ConfigError([Problem(file, line, "(yaml)",
                                    one_line(str(exc).splitlines()[0], MESSAGE_LIMIT))])
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        where = "(yaml)" if not path else format_path(path[:12]) + ("…" if path[12:] else "")
        return ConfigError([Problem(file, line, where,
                                    one_line(f"{exc.problem or exc}", MESSAGE_LIMIT))])
    return ConfigError([Problem(file, 1, "(yaml)", one_line(str(exc), MESSAGE_LIMIT))])


def _finish(doc: Doc, dups: list[tuple[KeyPath, int]]) -> Doc:
    if dups:
        raise ConfigError(
            [Problem(doc.file, line, format_path(p), "duplicate key") for p, line in dups]
        )
    if not isinstance(doc.data, dict):
        raise ConfigError([Problem(doc.file, 1, "(top)",
                                   "expected a mapping at the top level")])
    return doc


def _read_fast(text: str, file: str) -> Doc:
    reader = FastReader(text)
    try:
        data = reader.read()
    except yaml.YAMLError:
        # A broken or hostile file: the reference reader says what and where, in its
        # own words (libyaml's messages and marks differ); it is as bounded.
        raise _Fallback("a YAML error") from None
    if data is None and not reader.marks:
        raise ConfigError([Problem(file, 1, "(top)", "the file is empty")])
    doc = Doc(file, _str_keys(data))
    doc.marks = reader.marks
    return _finish(doc, reader.dups)


def _read_full(text: str, file: str) -> Doc:
    """The reference reader (PyYAML's composer, bounded): what the fast one falls back to."""
    loader: BoundedLoader | None = None
    path: KeyPath | None = None
    node: yaml.Node | None = None
    try:
        loader = BoundedLoader(text)  # checks the characters already
        node = loader.get_single_node()
        if node is None:
            raise ConfigError([Problem(file, 1, "(top)", "the file is empty")])
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        if isinstance(exc, yaml.MarkedYAMLError) and loader is not None:
            if loader.bad_node is not None and node is not None:
                path = _node_path(node, loader.bad_node)
            else:
                path = loader.refused_at
        raise _yaml_problem(exc, text, file, path) from None
    finally:
        if loader is not None:
            loader.dispose()
    doc = Doc(file, _str_keys(data))
    dups: list[tuple[KeyPath, int]] = []
    _walk_marks(node, (), doc.marks, dups)
    return _finish(doc, dups)
