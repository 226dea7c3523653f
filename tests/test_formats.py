"""A partner format is one adapter module plus one YAML file (contracts/formats/<name>.yaml).

The test adds a throw-away format in a temporary directory -- an adapter module outside the hub's
package and its format file -- gives it to a provider, and sends messages both ways: nothing else in
the hub is told about it.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hub.adapters import get_adapter
from hub.endpoints import ingress
from hub.endpoints.validate import check_contracts
from hub.runtime import Hub
from hub.schemas.formats import FormatError, formats_in
from hub.store import db
from hub.store.tables import deliveries
from tests.conftest import CONTRACTS, JOBCENTER, PROVIDER, agency_sample, drain, encode, hub_for, send

TOY = "toy-json"
TOY_MEDIA = "application/vnd.casechain.toy+json"

ADAPTER_MODULE = '''
"""A throw-away format: provider JSON's syntax under its own name and media type."""
from hub.adapters.provider_json import ProviderJsonAdapter


class ToyAdapter(ProviderJsonAdapter):
    format = "toy-json"
'''


@pytest.fixture
def toy_contracts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repository's contracts plus the toy format, which the provider now speaks."""
    contracts = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, contracts)
    module_dir = tmp_path / "toy_format"
    module_dir.mkdir()
    (module_dir / "toy_adapter.py").write_text(ADAPTER_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(module_dir))
    spec = yaml.safe_load((contracts / "formats" / "provider-json.yaml").read_text(encoding="utf-8"))
    spec.update(format=TOY, adapter="toy_adapter:ToyAdapter", media_type=TOY_MEDIA, title="Toy JSON",
                schema={"file": "toy-json.schema.json", "kind": "json-schema", "per": "message"})
    (contracts / "formats" / f"{TOY}.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    for schema in contracts.glob("messages/*/*/provider-json.schema.json"):
        shutil.copy(schema, schema.with_name("toy-json.schema.json"))
    profile_path = contracts / "partners" / f"{PROVIDER}.yaml"
    profile = yaml.safe_load(profile_path.read_text(encoding="utf-8"))
    profile["format"] = TOY
    profile_path.write_text(yaml.safe_dump(profile, allow_unicode=True), encoding="utf-8")
    return contracts


@pytest.fixture
def toy_hub(toy_contracts: Path, hub_env: dict[str, str]) -> Iterator[Hub]:
    hub = hub_for({**hub_env, "HUB_CONTRACTS_DIR": str(toy_contracts)})
    yield hub
    hub.close()
    db.dispose_all()
    sys.modules.pop("toy_adapter", None)


def test_a_new_format_is_registered_by_its_file_alone(toy_hub: Hub) -> None:
    adapter = toy_hub.adapter(TOY)
    assert type(adapter).__module__ == "toy_adapter", "the adapter class is the one the format file names"
    assert adapter.media_type == TOY_MEDIA
    assert TOY in toy_hub.registry.formats
    assert (("teilnahme.anwesenheit.2030", "1.0", TOY)) in toy_hub.registry.contracts, "its schema files make contracts"
    assert check_contracts(toy_hub) == [], "the contract checks (examples, round trips, compatibility) cover the new format"


def test_messages_flow_to_and_from_a_partner_in_the_new_format(toy_hub: Hub) -> None:
    assignment = agency_sample("zuweisung.anmeldung.1020")
    send(toy_hub, JOBCENTER, "agency-xml", assignment)
    with db.read(toy_hub.engine) as conn:
        to_provider = conn.execute(deliveries.select().where(deliveries.c.recipient == PROVIDER)).all()
    assert [(d.format, d.content_type) for d in to_provider] == [(TOY, TOY_MEDIA)], "the provider receives its own format"
    case_id = toy_hub.adapter(TOY).decode(to_provider[0].body).body.case_id

    from hub.samples import samples

    report = samples(TOY, fresh=True, case_id=case_id, contracts_dir=toy_hub.contracts_dir)["teilnahme.anwesenheit.2030"]
    accepted = ingress.accept(toy_hub, toy_hub.partners[PROVIDER], encode(toy_hub, TOY, report), TOY_MEDIA)
    drain(toy_hub)
    with db.read(toy_hub.engine) as conn:
        to_jobcenter = conn.execute(deliveries.select().where(deliveries.c.message_id == accepted.id, deliveries.c.recipient == JOBCENTER)).all()
    assert [d.format for d in to_jobcenter] == ["agency-xml"], "the provider's report in the new format reaches the Jobcenter as agency XML"


def test_a_format_file_that_says_too_little_is_refused_naming_the_file(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    (contracts / "formats").mkdir(parents=True)
    (contracts / "formats" / "half.yaml").write_text("format: half\nmedia_type: text/plain\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"half\.yaml: a format names adapter, schema, extension"):
        formats_in(contracts)


def test_an_unknown_format_names_no_adapter() -> None:
    with pytest.raises(LookupError, match="no adapter for format 'fax'"):
        get_adapter(CONTRACTS, "fax")
