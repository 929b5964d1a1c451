"""Pipeline YAML data -> the envelope of `cep.config.models`, each component's params validated.

What users write is terse (`filter: "..."` in a list, params beside `type:`); the envelope is
uniform (`SourceSpec(id, type, params, config)`, `OpSpec(name, args, index, config)`, every
`from` a tuple). A component with any mistake is reported and left out, so one broken component
never causes follow-on errors in the envelope, and every broken component is reported.
"""
from __future__ import annotations

import os
import re
from typing import Any, Callable

from cep.config.models import Pipeline
from cep.config.params import ParamsValidator
from cep.config.problems import KeyPath, Report, describe, did_you_mean
from cep.config.templates import Template, instantiate

TOP_KEYS = (*(name for name in Pipeline.model_fields if name != "path"), "tests")  # `tests:` is `cep test`'s
SCALAR_SECTIONS = ("version", "name", "imports", "plugins", "defaults", "transport", "security", "metrics", "hosts", "deploy")
SOURCE_ENVELOPE = ("type", "backpressure", "transport")
SINK_ENVELOPE = ("type", "from", "delivery", "backpressure", "transport")
VENUE_ENVELOPE = ("type", "quotes")
ORDER_ENVELOPE = ("from", "venue", "quotes")
STREAM_KEYS = ("from", "key_by", "ops", "transport")
RULE_OWN = ("from", "partition_by", "transport")  # a rule's keys that are not its component's params
RULE_KEYS = (*RULE_OWN, "use", "with")
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class Normaliser:
    """Turns one pipeline's data into an envelope dict ready for `Pipeline.model_validate`."""

    def __init__(self, report: Report, params: ParamsValidator, templates: dict[str, Template]):
        self.report = report
        self.params = params
        self.templates = templates

    # -- the whole pipeline -------------------------------------------------------------------
    def pipeline(self, data: dict[str, Any]) -> dict[str, Any]:
        for key in data:
            if key not in TOP_KEYS:
                self.report.error((key,), f"unknown top-level key {key!r}",
                                  did_you_mean(key, TOP_KEYS, "valid keys"))
        envelope = {key: data[key] for key in SCALAR_SECTIONS if key in data}
        sections: dict[str, Callable[[str, dict, KeyPath], dict | None]] = {
            "sources": self.source, "streams": self.stream, "rules": self.rule, "sinks": self.sink,
            "venues": self.venue, "orders": self.order}
        for section, build in sections.items():
            envelope[section] = {}
            entries = data.get(section)
            if entries is None:
                continue
            if not isinstance(entries, dict):
                self.report.error((section,), f"{section}: must be a mapping of id -> {section[:-1]}")
                continue
            for cid, raw in entries.items():
                path = (section, cid)
                if not _ID.fullmatch(cid):
                    self.report.error(path, f"{section[:-1]} id {cid!r} is not a plain name",
                                      "use letters, digits, '_', '-' and '.', starting with a letter")
                elif not isinstance(raw, dict):
                    self.report.error(path, f'{section[:-1]} "{cid}": must be a mapping')
                elif (spec := build(cid, raw, path)) is not None:
                    envelope[section][cid] = spec
        return envelope

    # -- one component of each kind -----------------------------------------------------------
    def source(self, sid: str, raw: dict, path: KeyPath) -> dict | None:
        subject = f'source "{sid}"'
        params = {k: v for k, v in raw.items() if k not in SOURCE_ENVELOPE}
        config = self.typed("source", raw, path, subject, params)
        if config is None:
            return None
        return {"id": sid, "type": raw["type"], "params": params, "config": config,
                **{k: raw[k] for k in ("backpressure", "transport") if k in raw}}

    def sink(self, sid: str, raw: dict, path: KeyPath) -> dict | None:
        subject = f'sink "{sid}"'
        params = {k: v for k, v in raw.items() if k not in SINK_ENVELOPE}
        inputs = self.inputs(raw, path, subject)
        config = self.typed("sink", raw, path, subject, params)
        if config is None or inputs is None:
            return None
        return {"id": sid, "type": raw["type"], "params": params, "config": config, "from": inputs,
                **{k: raw[k] for k in ("delivery", "backpressure", "transport") if k in raw}}

    def venue(self, vid: str, raw: dict, path: KeyPath) -> dict | None:
        subject = f'venue "{vid}"'
        params = {k: v for k, v in raw.items() if k not in VENUE_ENVELOPE}
        quotes = self.reference(raw, "quotes", path, subject, "name the stream of quotes it matches against")
        config = self.typed("venue", raw, path, subject, params)
        if config is None or quotes is None:
            return None
        return {"id": vid, "type": raw["type"], "quotes": quotes, "params": params, "config": config}

    def order(self, oid: str, raw: dict, path: KeyPath) -> dict | None:
        """An order executor: its envelope, and its settings validated by `ExecutorSettings`."""
        from cep.orders.settings import ExecutorSettings  # the order half loads only when used

        subject = f'order executor "{oid}"'
        params = {k: v for k, v in raw.items() if k not in ORDER_ENVELOPE}
        inputs = self.inputs(raw, path, subject)
        venue = self.reference(raw, "venue", path, subject, "name an entry of venues:")
        quotes = raw.get("quotes")
        if quotes is not None and not isinstance(quotes, str):
            self.report.error(path + ("quotes",), f"{subject}: 'quotes' must be the id of a stream "
                                                  f"(got {describe(quotes)})", "write quotes: quotes")
            return None
        config = self.params.model(ExecutorSettings, params, path, subject)
        if config is None or inputs is None or venue is None:
            return None
        return {"id": oid, "from": inputs, "venue": venue, "quotes": quotes, "params": params, "config": config}

    def reference(self, raw: dict, key: str, path: KeyPath, subject: str, hint: str) -> str | None:
        """The id a required key names; None after reporting it missing or not an id."""
        if key not in raw:
            self.report.error(path, f"{subject}: missing required key {key!r}", hint)
            return None
        if not isinstance(raw[key], str):
            self.report.error(path + (key,), f"{subject}: {key!r} must be an id (got {describe(raw[key])})", hint)
            return None
        return raw[key]

    def stream(self, sid: str, raw: dict, path: KeyPath) -> dict | None:
        subject = f'stream "{sid}"'
        self.unknown_keys(raw, STREAM_KEYS, path, subject)
        inputs = self.inputs(raw, path, subject)
        written = raw.get("ops", [])
        if not isinstance(written, list):
            self.report.error(path + ("ops",), f"{subject}: 'ops:' must be a list of operators",
                              'write each as "- name: args"')
            return None
        ops = [self.op(sid, index, item, path + ("ops", index)) for index, item in enumerate(written)]
        if inputs is None or None in ops:
            return None
        return {"id": sid, "from": inputs, "ops": ops,
                **{k: raw[k] for k in ("key_by", "transport") if k in raw}}

    def op(self, sid: str, index: int, item: Any, path: KeyPath) -> dict | None:
        if not (isinstance(item, dict) and len(item) == 1):
            got = f"{len(item)} keys" if isinstance(item, dict) else describe(item)
            self.report.error(path, f'stream "{sid}": ops[{index}] must be one "name: args" '
                                    f"mapping (got {got})",
                              'write each operator as its own list item: "- filter: ..."')
            return None
        ((name, args),) = item.items()
        subject = f'operator "{name}" in stream "{sid}"'
        component = self.params.component("operator", name, path + (name,), subject)
        if component is None:
            return None
        config = self.params.operator(component, args, path + (name,), subject)
        if config is None:
            return None
        return {"name": name, "args": args, "config": config, "index": index}

    def rule(self, rid: str, raw: dict, path: KeyPath, subject: str | None = None,
             needs_from: bool = True) -> dict | None:
        """A rule by `use:` (template or registry rule) or with an inline `pattern:`."""
        named = subject or f'rule "{rid}"'
        if "use" in raw and "pattern" in raw:
            self.report.error(path + ("pattern",), f"{named}: has both 'use:' and 'pattern:'",
                              "a rule either uses a named rule or writes a pattern inline")
            return None
        template = self.templates.get(raw.get("use")) if isinstance(raw.get("use"), str) else None
        if template is not None:
            self.shadowing(template, path, named)
            raw = instantiate(template, raw, path, self.report)
            if raw is None:
                return None
            named = subject or f'{named} (template "{template.name}")'
        return self.registry_rule(rid, raw, path, named, needs_from)

    def registry_rule(self, rid: str, raw: dict, path: KeyPath, subject: str,
                      needs_from: bool) -> dict | None:
        """A rule whose `use:` names a registry rule, or an inline pattern (`type: pattern`)."""
        if "use" in raw:
            self.unknown_keys(raw, RULE_KEYS, path, subject)
            kind, params, params_path = raw["use"], raw.get("with", {}), path + ("with",)
            component = self.params.component("rule", kind, path + ("use",), subject,
                                              also_known=self.templates)
            if not isinstance(params, dict):
                self.report.error(params_path, f"{subject}: 'with:' must be a mapping of parameters")
                return None
        elif "pattern" in raw:
            kind, params_path = "pattern", path
            params = {k: v for k, v in raw.items() if k not in RULE_OWN}
            component = self.params.component("rule", kind, path + ("pattern",), subject)
        else:
            self.report.error(path, f"{subject}: needs 'use: NAME' or an inline 'pattern:'",
                              "use: names a rule template or a registered rule")
            return None
        inputs = self.inputs(raw, path, subject) if needs_from else ()
        config = component and self.params.validate(component, params, params_path, subject)
        if config is None or inputs is None:
            return None
        return {"id": rid, "type": kind, "params": params, "config": config, "from": inputs,
                **{k: raw[k] for k in RULE_OWN[1:] if k in raw}}

    def shadowing(self, template: Template, path: KeyPath, subject: str) -> None:
        """Say which one `use: NAME` means when NAME is both an imported template and a registry
        rule: the template wins, and its parameters are not the rule's."""
        if self.params.registry.get("rule", template.name) is not None:
            self.report.warn(path + ("use",),
                             f'{subject}: uses the template "{template.name}" of '
                             f"{os.path.normpath(template.file)}, which shadows the built-in rule "
                             f"'{template.name}' (their parameters differ)",
                             "rename the template to use both; drop the import to use the "
                             "built-in rule")

    # -- shared checks ------------------------------------------------------------------------
    def typed(self, kind: Any, raw: dict, path: KeyPath, subject: str, params: dict) -> Any:
        """The validated params of a source or sink named by its `type:`."""
        if "type" not in raw:
            self.report.error(path, f"{subject}: missing required key 'type'",
                              did_you_mean("", self.params.registry.names(kind), f"known {kind}s"))
            return None
        component = self.params.component(kind, raw["type"], path + ("type",), subject)
        return component and self.params.validate(component, params, path, subject)

    def inputs(self, raw: dict, path: KeyPath, subject: str) -> tuple[str, ...] | None:
        """`from:` as a tuple of ids; None after reporting a missing or malformed one."""
        if "from" not in raw:
            self.report.error(path, f"{subject}: missing required key 'from'",
                              "name the source, stream or rule it reads")
            return None
        value = raw["from"]
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return tuple(value)
        self.report.error(path + ("from",), f"{subject}: 'from' must be an id or a non-empty "
                                            f"list of ids (got {describe(value)})",
                          "write from: quotes or from: [quotes, trades]")
        return None

    def unknown_keys(self, raw: dict, allowed: tuple[str, ...], path: KeyPath, subject: str) -> None:
        for key in raw:
            if key not in allowed:
                self.report.error(path + (key,), f"{subject}: unknown key {key!r}",
                                  did_you_mean(key, allowed, "valid keys"))
