"""mkdocs hook: tables generated from the code at build time (no network).

A page may hold these markers, each on a line of its own:

- ``<!-- methods-table -->``: one row per registered method (``xai_widgets.methods.names()``,
  in the pickers' order), from its ``MethodSpec``;
- ``<!-- method-params -->``: one section per method with its parameters (``Param``), the
  default and the default for a 224×224 image (``Param.default_for``);
- ``<!-- widget-traits -->``: the settable and read-only traits of ``ExplainWidget``;
- ``<!-- widget-tabs -->``: the panels in ``ExplainWidget``'s tab registry (``TABS``).

mkdocs.yml lists this file under ``hooks:``.
"""

from __future__ import annotations

import logging
import warnings

log = logging.getLogger("mkdocs.hooks.xai_widgets")


def on_startup(command, dirty) -> None:
    """Import the package once, quietly: its widget libraries (bqplot's scales) raise
    DeprecationWarnings at import that mkdocs would log."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import xai_widgets.widgets.explain_widget  # noqa: F401

FLAGS = (("needs_baseline", "baseline"), ("uses_data", "`data=`"), ("spatial", "spatial"),
         ("complete", "complete"), ("superpixels", "superpixels"))


def cell(text) -> str:
    """Text that is safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def code(value) -> str:
    return f"`{value!r}`" if isinstance(value, str) else f"`{value}`"


def methods_table() -> str:
    from xai_widgets import methods

    rows = ["| method | label | backend | what it shows | needs / gives |",
            "|---|---|---|---|---|"]
    for name in methods.names():
        spec = methods.spec(name)
        flags = ", ".join(label for attr, label in FLAGS if getattr(spec, attr)) or "—"
        default = " (default)" if name == methods.DEFAULT_METHOD else ""
        rows.append(f"| [`{name}`](#{name}){default} | {cell(spec.label)} | {spec.backend} | "
                    f"{cell(spec.description)} | {flags} |")
    return "\n".join(rows)


def param_range(p) -> str:
    if p.kind == "choice":
        return ", ".join(code(c) for c in p.choices)
    if p.low is not None or p.high is not None:
        return f"{p.low if p.low is not None else ''}..{p.high if p.high is not None else ''}"
    return "—"


def method_params() -> str:
    from xai_widgets import methods

    out = []
    for name in methods.names():
        spec = methods.spec(name)
        out += [f"### `{name}` {{ #{name} }}", "", f"**{cell(spec.label)}** ({spec.backend}): "
                f"{spec.description}.", ""]
        if not spec.params:
            out += ["No parameters.", ""]
            continue
        out += ["| parameter | kind | default | at 224 px | range / choices | help |",
                "|---|---|---|---|---|---|"]
        for p in spec.params:
            at_224 = p.default_for((224, 224))
            out.append(f"| `{p.name}` | {p.kind} | {code(p.default)} | "
                       f"{code(at_224) if at_224 != p.default else '='} | {cell(param_range(p))} | "
                       f"{cell(p.help) or '—'} |")
        out.append("")
    return "\n".join(out)


def widget_traits() -> str:
    from xai_widgets.widgets.explain_widget import READ_ONLY, SETTABLE

    settable = ", ".join(f"`w.{n}`" for n in SETTABLE)
    read_only = ", ".join(f"`w.{n}`" for n in READ_ONLY)
    return f"- settable: {settable}\n- read-only: {read_only}"


def widget_tabs() -> str:
    from xai_widgets.widgets.explain_widget import TABS

    rows = ["| tab | `w.tab` | panel class | file |", "|---|---|---|---|"]
    for tab in TABS:
        module = tab.__module__.replace(".", "/") + ".py"
        rows.append(f"| {tab.title} | `{tab.name!r}` | `{tab.__name__}` | `{module}` |")
    return "\n".join(rows)


MARKERS = {"<!-- methods-table -->": methods_table, "<!-- method-params -->": method_params,
           "<!-- widget-traits -->": widget_traits, "<!-- widget-tabs -->": widget_tabs}


def on_page_markdown(markdown: str, page, config, files) -> str:
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
            log.debug("%s: filled %s", page.file.src_path, marker)
    return markdown
