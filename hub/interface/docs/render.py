"""Interface documentation (Schnittstellendokumentation) rendered as static HTML from contracts/.

The pages are generated from the same files the hub validates against: the field tables come from the
schema files themselves (XSD through xmlschema introspection, JSON Schema by walking it), never from a
hand-written description that could drift. Layout of the output directory:

    index.html                                catalogue: message types, partners, purposes
    codelists.html                            every code list with its values and meanings
    partners/<id>.html                        one page per partner profile
    messages/<type>/<version>/index.html      one page per message type and version,
    messages/<type>/<version>/<schema files>  next to the schema files and examples (downloads)
    common/...                                shared schema parts, so relative xs:include still resolve

Everything is escaped by the template engine (autoescape on); contracts are data from many hands.

Why this module: it is the one place that knows the output layout and the templates; the field
tables (:mod:`~hub.interface.docs.xsd_fields`, :mod:`~hub.interface.docs.json_fields`) and the
partner facts (:mod:`~hub.interface.docs.partners`) are computed elsewhere and only laid out here.
"""

from __future__ import annotations

import shutil
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import jinja2
import yaml

from hub.adapters import get_adapter
from hub.interface.docs.codelists import CodeListRef
from hub.interface.docs.json_fields import json_field_table
from hub.interface.docs.partners import field_in_format, name_tables, partner_version, version_key
from hub.interface.docs.tables import FieldTable
from hub.interface.docs.xsd_fields import xsd_field_table
from hub.partners import Partner, load_partners
from hub.routing.purposes import PurposeProfiles
from hub.schemas.codelists import CodeList, load_codelists
from hub.schemas.registry import Contract, Registry

TEMPLATES = Path(__file__).parent.parent / "templates"  # hub/interface/templates (package data)

COMPAT_LABELS = {
    "BACKWARD": "Empfänger mit dieser Version lesen auch Nachrichten der vorigen Version.",
    "BACKWARD_TRANSITIVE": "Empfänger mit dieser Version lesen Nachrichten aller früheren Versionen.",
    "FORWARD": "Empfänger mit der vorigen Version lesen auch Nachrichten dieser Version.",
    "FORWARD_TRANSITIVE": "Empfänger mit irgendeiner früheren Version lesen Nachrichten dieser Version.",
    "FULL": "Rückwärts- und vorwärtskompatibel zur vorigen Version.",
    "FULL_TRANSITIVE": "Rückwärts- und vorwärtskompatibel zu allen früheren Versionen.",
    "NONE": "Keine Kompatibilitätszusage zwischen Versionen.",
}
ROLE_LABELS = {
    "jobcenter": "Jobcenter (gemeinsame Einrichtung)",
    "municipal": "Kommunaler Träger",
    "provider": "Maßnahmeträger (provider)",
    "operator": "Hub-Betrieb (operator)",
}


def field_table(contract: Contract, codelists: dict[str, CodeList]) -> FieldTable:
    """The field table of one contract; a schema that cannot be read is reported, not fatal."""
    try:
        if contract.schema_path.suffix == ".xsd":
            table = xsd_field_table(contract.schema_path, contract.message_type, codelists)
        elif contract.schema_path.name.endswith(".json"):
            table = json_field_table(contract.schema_path, codelists)
        else:
            return FieldTable(format=contract.format, kind="none")
    except Exception as exc:  # noqa: BLE001 - a broken schema must not take the documentation down
        return FieldTable(format=contract.format, kind="none", error=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
    table.format = contract.format
    return table


def environment(titles: dict[str, str] | None = None) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every value comes from contract files: escape all of it
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["format_label"] = lambda f: (titles or {}).get(f, f)
    env.filters["compat_label"] = lambda c: COMPAT_LABELS.get(str(c).upper(), "")
    env.filters["role_label"] = lambda r: ROLE_LABELS.get(r, r)
    env.filters["is_mapping"] = lambda v: isinstance(v, dict)
    env.filters["is_sequence"] = lambda v: isinstance(v, (list, tuple))
    return env


def _message_meta(contracts_dir: Path, code: str) -> dict[str, Any]:
    path = contracts_dir / "messages" / code / "contract.yaml"
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError:
        return {}


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


def render_docs(contracts_dir: Path, out: Path) -> list[Path]:
    """Render the interface documentation of `contracts_dir` into `out`; returns the HTML pages written."""
    contracts_dir, out = Path(contracts_dir).resolve(), Path(out)
    registry = Registry(contracts_dir)
    partners = load_partners(contracts_dir)
    codelists = load_codelists(contracts_dir)
    purposes_file = contracts_dir / "purposes.yaml"
    purposes = PurposeProfiles.load(purposes_file).purposes if purposes_file.exists() else {}
    names = name_tables(contracts_dir)
    pointers = {name: get_adapter(contracts_dir, name).pointer for name in registry.format_specs}
    env = environment({name: fmt.title for name, fmt in registry.format_specs.items()})
    out.mkdir(parents=True, exist_ok=True)
    pages: list[Path] = []

    def write(rel: str, template: str, **context: Any) -> None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        root = "../" * rel.count("/")
        path.write_text(env.get_template(template).render(root=root, **context), encoding="utf-8")
        pages.append(path)

    # shared schema parts (xs:include ../../../common/...) so downloaded schemas resolve as a tree
    if (contracts_dir / "common").is_dir():
        shutil.copytree(contracts_dir / "common", out / "common", dirs_exist_ok=True)

    def senders(code: str) -> list[Partner]:
        return [p for p in partners.values() if code in p.sends]

    def receivers(code: str) -> list[Partner]:
        return [p for p in partners.values() if code in p.receives]

    types = []
    for mt in registry.types.values():
        meta = _message_meta(contracts_dir, mt.code)
        versions = sorted(mt.versions, key=version_key)
        types.append(
            {
                "code": mt.code,
                "title": mt.title,
                "description": mt.description,
                "direction": str(meta.get("direction", "")),
                "compatibility": mt.compatibility,
                "versions": versions,
                "latest": versions[-1] if versions else None,
                "formats": sorted({f for (t, _, f) in registry.contracts if t == mt.code}),
            }
        )
    type_by_code = {t["code"]: t for t in types}
    tables: dict[tuple[str, str, str], FieldTable] = {}

    def message_link(code: str, version: str | None = None) -> str | None:
        t = type_by_code.get(code)
        if t is None or not t["versions"]:
            return None
        v = version if version in t["versions"] else t["latest"]
        return f"messages/{code}/{v}/index.html"

    # message type pages, one per (type, version)
    for t in types:
        mt = registry.types[t["code"]]
        for version in t["versions"]:
            rel_dir = f"messages/{t['code']}/{version}"
            formats = []
            used_lists: dict[str, CodeListRef] = {}
            for (code, ver, fmt), contract in sorted(registry.contracts.items()):
                if code != t["code"] or ver != version:
                    continue
                _copy(contract.schema_path, out / rel_dir / contract.schema_path.name)
                examples = []
                for example in contract.examples:
                    _copy(example, out / rel_dir / "examples" / example.name)
                    examples.append({"name": example.name, "text": example.read_text(encoding="utf-8", errors="replace")})
                table = tables[(code, ver, fmt)] = field_table(contract, codelists)
                for row in table.rows:
                    if row.codelist and row.codelist.key:
                        used_lists.setdefault(row.codelist.key, row.codelist)
                formats.append({"format": fmt, "schema": contract.schema_path.name, "table": table, "examples": examples})
            info = mt.versions.get(version) or {}
            write(
                f"{rel_dir}/index.html",
                "message.html",
                t=t,
                version=version,
                info={k: v for k, v in info.items() if k not in ("changes", "status")},
                changes=info.get("changes", ""),
                status=info.get("status", ""),
                history=[(v, (mt.versions.get(v) or {}).get("changes", "")) for v in t["versions"]],
                formats=formats,
                lists=[codelists[k] for k in sorted(used_lists)],
                senders=senders(t["code"]),
                receivers=receivers(t["code"]),
            )

    # partner pages
    for partner in partners.values():
        profile = partner.profile

        def flows(codes: tuple[str, ...], partner: Partner = partner) -> list[dict[str, Any]]:
            rows = []
            for code in codes:
                version = partner_version(partner, code, registry)
                t = type_by_code.get(code)
                available = (code, version, partner.format) in registry.contracts
                rows.append(
                    {
                        "code": code,
                        "title": t["title"] if t else "",
                        "format": partner.format,
                        "version": version,
                        "link": message_link(code, version),
                        "available": available,
                    }
                )
            return rows

        partner_purposes = []
        for code in partner.purposes:
            purpose = purposes.get(code)
            if purpose is None:
                partner_purposes.append({"code": code, "missing": True})
                continue
            allowed = []
            for pattern, paths in purpose.fields.items():
                matching = [c for c in partner.receives if fnmatchcase(c, pattern)]
                version = partner_version(partner, pattern, registry)
                table = tables.get((pattern, version, partner.format))
                known = {row.path for row in table.rows} if table else set()

                def native(path: str, known: set[str] = known) -> str | None:
                    # the name in the partner's format, shown only where its schema really has it
                    name = field_in_format(partner.format, path, names, pointers)
                    return name if name in known else None

                allowed.append(
                    {
                        "pattern": pattern,
                        "link": message_link(pattern, version) if pattern in type_by_code else None,
                        "received": bool(matching),
                        "all": "*" in paths,
                        "fields": [(p, native(p)) for p in paths if p != "*"],
                    }
                )
            partner_purposes.append(
                {"code": code, "missing": False, "legal_basis": purpose.legal_basis, "description": purpose.description, "allowed": allowed}
            )
        write(
            f"partners/{partner.id}.html",
            "partner.html",
            p=partner,
            description=profile.get("description", ""),
            responsibilities=profile.get("responsibilities") or [],
            quality=profile.get("quality") or [],
            contacts=profile.get("contacts") or [],
            delivery=profile.get("delivery", partner.delivery),
            sends=flows(partner.sends),
            receives=flows(partner.receives),
            purposes=partner_purposes,
        )

    write("codelists.html", "codelists.html", lists=list(codelists.values()))
    write(
        "index.html",
        "index.html",
        types=types,
        partners=list(partners.values()),
        purposes=list(purposes.values()),
        lists=list(codelists.values()),
    )
    return pages
