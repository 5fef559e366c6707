"""Bounded YAML reading with the line of every key path.

A hostile or broken file (an alias bomb, thousands of nested brackets, a huge file) is
rejected in well under a second; every failure is a :class:`ConfigError` with a line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NoReturn

import yaml

from monitord.config.problems import MESSAGE_LIMIT, ConfigError, KeyPath, Problem, format_path
from monitord.values import one_line

# Bounds on what the YAML loader accepts, so that a hostile or broken file (an alias
# bomb, thousands of nested brackets, a huge file) is rejected in well under a second
# instead of eating memory and CPU.  A real office (3,000 devices) needs ~60,000 nodes,
# depth 7 and under 1 MiB.
MAX_CONFIG_BYTES = 10 * 1024 * 1024
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 250_000  # counting every use of an alias with the size of what it names
MAX_YAML_ALIASES = 20_000


class BoundedLoader(yaml.SafeLoader):
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

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
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
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
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


BoundedLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|false|False)$"), list("tTfF")
)


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
    loader: BoundedLoader | None = None
    path: KeyPath | None = None
    node: yaml.Node | None = None
    try:
        loader = BoundedLoader(text)  # checks the characters already
        node = loader.get_single_node()
        if node is None:
            raise ConfigError([Problem(file, 1, "(top)", "the file is empty")])
        data = loader.construct_document(node)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(
            [Problem(file, line, "(yaml)",
                     one_line(str(exc).splitlines()[0], MESSAGE_LIMIT))]
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        if loader is not None and loader.bad_node is not None and node is not None:
            path = _node_path(node, loader.bad_node)
        elif loader is not None:
            path = loader.refused_at
        where = "(yaml)" if not path else format_path(path[:12]) + ("…" if path[12:] else "")
        raise ConfigError(
            [Problem(file, line, where,
                     one_line(f"{exc.problem or exc}", MESSAGE_LIMIT))]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            [Problem(file, 1, "(yaml)", one_line(str(exc), MESSAGE_LIMIT))]) from None
    finally:
        if loader is not None:
            loader.dispose()
    doc = Doc(file, _str_keys(data))
    dups: list[tuple[KeyPath, int]] = []
    _walk_marks(node, (), doc.marks, dups)
    if dups:
        raise ConfigError(
            [Problem(file, line, format_path(p), "duplicate key") for p, line in dups]
        )
    if not isinstance(doc.data, dict):
        raise ConfigError([Problem(file, 1, "(top)", "expected a mapping at the top level")])
    return doc
