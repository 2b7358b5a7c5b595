"""What HACS and hassfest would reject, checked here without a browser or a server.

- manifest.json: the keys hassfest knows, in its order (domain, name, then alphabetical),
  with values it accepts, and the keys HACS needs;
- hacs.json: only the keys HACS knows, a Home Assistant version that works;
- brand/: the images Home Assistant shows, in the sizes the brands rules ask for;
- translations: strings.json and translations/en.json the same, with every key the code
  uses (exception, issue, selector and entity keys, and the config and options flows'
  steps, menus, errors, aborts and field labels), found by reading the code; every key
  one hassfest accepts; every language with the keys and placeholders of strings.json,
  texts hassfest takes, and none left in English;
- services.yaml: present exactly when the code registers actions, listing those, each
  named and described;
- quality_scale.yaml: only real rule names and statuses, and "done" where it says so.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
import importlib
import json
from pathlib import Path
import re
import string
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

from awesomeversion import AwesomeVersion, AwesomeVersionStrategy
import homeassistant.components
from homeassistant.const import Platform, __version__ as ha_version
from homeassistant.util.yaml import load_yaml_dict
from packaging.requirements import Requirement
import pytest

from custom_components.ha_ingestor.const import (
    CONF_BUCKET,
    CONF_DATABASE,
    CONF_ORGANIZATION,
    CONF_RETENTION_POLICY,
)
from custom_components.ha_ingestor.influxdb import errors as influx_errors

ROOT = Path(__file__).parents[1]
INTEGRATION = ROOT / "custom_components" / "ha_ingestor"
PACKAGE = "custom_components.ha_ingestor"
CORE_COMPONENTS = Path(homeassistant.components.__file__).parent


def _json(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


# --- manifest.json ----------------------------------------------------------------------

# The keys hassfest accepts in a custom integration's manifest.
MANIFEST_KEYS = {
    "domain",
    "name",
    "after_dependencies",
    "bluetooth",
    "codeowners",
    "config_flow",
    "dependencies",
    "dhcp",
    "disabled",
    "documentation",
    "homekit",
    "import_executor",
    "integration_type",
    "iot_class",
    "issue_tracker",
    "loggers",
    "mqtt",
    "quality_scale",
    "requirements",
    "single_config_entry",
    "ssdp",
    "usb",
    "version",
    "zeroconf",
}
INTEGRATION_TYPES = {
    "device",
    "entity",
    "hardware",
    "helper",
    "hub",
    "service",
    "system",
}
IOT_CLASSES = {
    "assumed_state",
    "calculated",
    "cloud_polling",
    "cloud_push",
    "local_polling",
    "local_push",
}
VERSION_STRATEGIES = [
    AwesomeVersionStrategy.CALVER,
    AwesomeVersionStrategy.SEMVER,
    AwesomeVersionStrategy.SIMPLEVER,
    AwesomeVersionStrategy.BUILDVER,
    AwesomeVersionStrategy.PEP440,
]


def test_manifest_keys_and_order() -> None:
    """Domain and name first, then alphabetical; only keys hassfest knows."""
    manifest = _json(INTEGRATION / "manifest.json")
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    assert set(keys) <= MANIFEST_KEYS, set(keys) - MANIFEST_KEYS
    # hassfest: codeowners, documentation, and a version for a custom integration;
    # HACS: issue_tracker too; and what this integration is.
    assert {
        "codeowners",
        "config_flow",
        "documentation",
        "integration_type",
        "iot_class",
        "issue_tracker",
        "requirements",
        "version",
    } <= set(keys)


def test_manifest_values() -> None:
    """Each value as hassfest validates it."""
    manifest = _json(INTEGRATION / "manifest.json")
    domain = manifest["domain"]
    assert domain == INTEGRATION.name == "ha_ingestor"
    assert re.fullmatch(r"[a-z0-9_]+", domain)
    assert not (CORE_COMPONENTS / domain).exists(), "collides with a core integration"
    assert isinstance(manifest["name"], str)
    assert manifest["name"].strip()
    assert manifest["codeowners"]
    assert all(re.fullmatch(r"@[\w.-]+(/[\w.-]+)?", o) for o in manifest["codeowners"])
    for key in ("documentation", "issue_tracker"):
        url = urlparse(manifest[key])
        assert url.scheme == "https", f"{key} is not an https URL"
        assert url.netloc, f"{key} names no host"
    AwesomeVersion(manifest["version"], ensure_strategy=VERSION_STRATEGIES)
    assert manifest["integration_type"] in INTEGRATION_TYPES
    assert manifest["iot_class"] in IOT_CLASSES
    assert manifest["config_flow"] is True
    assert (INTEGRATION / "config_flow.py").is_file()
    assert manifest["integration_type"] == "service"
    assert manifest["iot_class"] == "local_push"
    for key in ("dependencies", "after_dependencies"):
        for dependency in manifest.get(key, []):
            assert (CORE_COMPONENTS / dependency).is_dir(), f"unknown {dependency}"


def test_manifest_requirements_are_pinned_and_tested() -> None:
    """Each requirement is pinned (==), and the tests install that same pin."""
    manifest = _json(INTEGRATION / "manifest.json")
    tested = {
        line.strip()
        for line in (ROOT / "requirements_test.txt").read_text("utf-8").splitlines()
    }
    for requirement in manifest["requirements"]:
        parsed = Requirement(requirement)
        assert [spec.operator for spec in parsed.specifier] == ["=="], requirement
        assert requirement in tested, f"{requirement} not in requirements_test.txt"


# --- hacs.json and the repository's layout ---------------------------------------------

# The keys HACS accepts in hacs.json.
HACS_KEYS = {
    "name",
    "content_in_root",
    "zip_release",
    "filename",
    "hide_default_branch",
    "country",
    "homeassistant",
    "hacs",
    "persistent_directory",
    "render_readme",
}


def test_hacs_json() -> None:
    """Known keys only; the name and a Home Assistant version that works."""
    hacs = _json(ROOT / "hacs.json")
    assert set(hacs) <= HACS_KEYS, set(hacs) - HACS_KEYS
    assert hacs["name"] == _json(INTEGRATION / "manifest.json")["name"]
    minimum = AwesomeVersion(hacs["homeassistant"], ensure_strategy=VERSION_STRATEGIES)
    # The tests run against a Home Assistant no older than the one HACS promises.
    assert minimum <= AwesomeVersion(ha_version)
    # The first release on Python 3.14, as the README says.
    assert hacs["homeassistant"] == "2026.3.0"
    for key in (
        "content_in_root",
        "zip_release",
        "hide_default_branch",
        "render_readme",
    ):
        assert isinstance(hacs.get(key, False), bool)
    # The integration lives in custom_components/<domain>/, not at the root, not zipped.
    assert not hacs.get("content_in_root", False)
    assert not hacs.get("zip_release", False)
    if hacs.get("render_readme"):
        assert (ROOT / "README.md").is_file()


def test_the_oldest_release_hacs_names_is_tested() -> None:
    """tests/e2e/test_releases.py runs a patch of it, and nothing older."""
    minimum = AwesomeVersion(_json(ROOT / "hacs.json")["homeassistant"])
    releases = sorted(
        AwesomeVersion(path.stem)
        for path in (ROOT / "tests" / "e2e" / "releases").glob("*.txt")
    )
    assert releases, "no release to run the smoke tests on"
    assert (releases[0].major, releases[0].minor) == (minimum.major, minimum.minor)
    assert releases[0] >= minimum


def test_repository_holds_one_integration() -> None:
    """HACS installs the single folder under custom_components/."""
    folders = [p.name for p in (ROOT / "custom_components").iterdir() if p.is_dir()]
    assert [f for f in folders if f != "__pycache__"] == [INTEGRATION.name]


# --- Brand images ------------------------------------------------------------------------


def _png_size(path: Path) -> tuple[int, int, int]:
    """Width, height and colour type of a PNG, from its IHDR chunk."""
    header = path.read_bytes()[:26]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert header[12:16] == b"IHDR"
    return (
        int.from_bytes(header[16:20]),
        int.from_bytes(header[20:24]),
        header[25],
    )


def test_brand_images() -> None:
    """Icon 256x256 (and @2x 512x512), logos 128-256 px high (@2x double), RGBA."""
    brand = INTEGRATION / "brand"
    files = {p.name for p in brand.iterdir()}
    assert "icon.png" in files
    allowed = {
        f"{dark}{kind}{scale}.png"
        for dark in ("", "dark_")
        for kind in ("icon", "logo")
        for scale in ("", "@2x")
    }
    assert files <= allowed, files - allowed
    sizes = {name: _png_size(brand / name) for name in files}
    for name, (width, height, colour_type) in sizes.items():
        assert colour_type == 6, f"{name} has no alpha channel (RGBA)"
        kind = "icon" if "icon" in name else "logo"
        hidpi = "@2x" in name
        if kind == "icon":
            assert width == height == (512 if hidpi else 256), name
        else:
            low, high = (256, 512) if hidpi else (128, 256)
            assert low <= min(width, height) <= high, name
        if hidpi:
            base = sizes.get(name.replace("@2x", ""))
            assert base is not None, f"{name} without its 1x image"
            assert (width, height) == (base[0] * 2, base[1] * 2), name
        if name.startswith("dark_"):
            light = sizes.get(name.removeprefix("dark_"))
            assert light is not None, f"{name} without its light image"
            assert (width, height) == light[:2], name


# --- Translations -----------------------------------------------------------------------

# The sections Home Assistant reads from an integration's strings.json.
STRINGS_SECTIONS = {
    "title",
    "config",
    "config_subentries",
    "options",
    "selector",
    "entity",
    "entity_component",
    "device",
    "device_automation",
    "exceptions",
    "issues",
    "services",
    "conditions",
    "triggers",
    "system_health",
}
FLOW_BASES = {
    "ConfigFlow": "config",
    "OptionsFlow": "options",
    "OptionsFlowWithReload": "options",
    "OptionsFlowWithConfigEntry": "options",
}
PLATFORMS = {platform.value for platform in Platform}


def test_english_translation_is_strings_json() -> None:
    """A custom integration ships translations/en.json; strings.json is its source."""
    assert _json(INTEGRATION / "strings.json") == _json(
        INTEGRATION / "translations" / "en.json"
    )


def test_strings_json_has_only_known_sections() -> None:
    """Home Assistant ignores, and hassfest rejects, sections it does not know."""
    strings = _json(INTEGRATION / "strings.json")
    assert set(strings) <= STRINGS_SECTIONS, set(strings) - STRINGS_SECTIONS


def _texts(
    strings: dict[str, Any], path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every text of a strings file, by its path of keys (what is not a dict is a text)."""
    for key, value in strings.items():
        if isinstance(value, dict):
            yield from _texts(value, (*path, key))
        else:
            yield (*path, key), value


def _hassfest_key_error(key: str) -> str | None:
    """Why hassfest rejects `key` as a translation key, or None."""
    if not re.fullmatch(r"[a-z0-9_-]+", key):
        return "holds something other than a-z, 0-9, - and _"
    if key[0] in "-_" or key[-1] in "-_":
        return "starts or ends with - or _"
    if re.search(r"[-_]{2}", key):
        return "holds two of - and _ in a row"
    return None


def test_hassfest_key_rule_rejects_what_hassfest_rejects() -> None:
    """The rule as hassfest states it, on keys it accepts and keys it rejects."""
    for good in ("domain_device_class", "influxdb_v1", "a-b", "x", "2fa"):
        assert _hassfest_key_error(good) is None, good
    for bad in ("domain__device_class", "a-_b", "_a", "a_", "-a", "Upper", "a.b", ""):
        assert _hassfest_key_error(bad) is not None, bad


def test_every_key_of_strings_json_is_a_valid_translation_key() -> None:
    """Sections, steps, fields, options, entities, issues: every key at every depth."""
    strings = _json(INTEGRATION / "strings.json")
    wrong = {
        ".".join(path): error
        for path, _ in _texts(strings)
        for key in path
        if (error := _hassfest_key_error(key)) is not None
    }
    assert not wrong, wrong


# --- Languages ----------------------------------------------------------------------

LANGUAGES = sorted(p.stem for p in (INTEGRATION / "translations").glob("*.json"))
# Names that stay as they are in every language (a text of these alone may be the
# English one), and what is in no language: placeholders, web addresses, file paths
# and versions such as 1.x.
PROPER_NAMES = (
    "HA Ingestor",
    "Home Assistant",
    "InfluxDB",
    "InfluxQL",
    "Grafana",
    "SQLite",
    "URL",
    "SSL",
    "API",
    "gzip",
    "MiB",
    "MB",
)
_NOT_WORDS = re.compile(r"\{\w+\}|https?://\S+|\S+/\S+|\b\d+\.x\b")
# Words a language writes as English does (German "Schema", say), by language code:
# a text of these alone may be the English one too.
SAME_AS_ENGLISH: dict[str, frozenset[str]] = {
    # Home Assistant's German keeps "Bucket" (influxdb), "Labels" and "Status" (the
    # frontend's); "Schema" is German.
    "de": frozenset({"Bucket", "Labels", "Schema", "Status"}),
    # Home Assistant's Spanish keeps "Bucket" (influxdb).
    "es": frozenset({"Bucket"}),
    # Home Assistant's French keeps "Bucket" (influxdb).
    "fr": frozenset({"Bucket"}),
    # Home Assistant's Dutch writes "database", "Labels", "Schema" and "Status" too.
    "nl": frozenset({"Bucket", "Database", "Labels", "Schema", "Status"}),
    # Italian, as Home Assistant's Italian texts write them (Password, Token,
    # database, bucket); "schema" is an Italian word as well.
    "it": frozenset({"Bucket", "Database", "Password", "Schema", "Token"}),
    # Polish has no word of its own for a token; Home Assistant writes "Token", and
    # "Status" (a Polish word) for a status.
    "pl": frozenset({"Status", "Token"}),
    # Brazilian Portuguese, as Home Assistant's pt-BR texts write them ("Bucket",
    # "Token").
    "pt-BR": frozenset({"Bucket", "Token"}),
    # Swedish, as Home Assistant's Swedish influxdb texts write them ("Bucket",
    # "API-token"); "schema" and "status" are Swedish words as well.
    "sv": frozenset({"Bucket", "Schema", "Status", "Token"}),
    # Danish: "database" is the Danish word; InfluxDB's "bucket" has no Danish name in
    # use; "labels" and "status" are the words Home Assistant's Danish translation uses.
    "da": frozenset({"Bucket", "Database", "Labels", "Status"}),
    # Norwegian Bokmål: "database" is the Norwegian word.
    # "Status" is too, as Home Assistant's Bokmål frontend writes it.
    "nb": frozenset({"Database", "Status"}),
}


# What hassfest refuses in a text (besides placeholders that are not identifiers).
_REFUSED_IN_TEXTS = [
    (re.compile(r"^\s|\s$"), "spaces at the start or the end"),
    (re.compile(r"<[a-z][^>]*>", re.IGNORECASE), "HTML"),
    (re.compile(r"'\{\w+\}'"), "a placeholder in single quotes"),
    # A web address with a domain name belongs in a placeholder (localhost may stay).
    (
        re.compile(r"(\b[a-z0-9]+://|\bwww\.)[\w-]+(\.[\w-]+)*\.[a-z]{2,5}\b", re.I),
        "a web address",
    ),
]


def _hassfest_text_error(text: str) -> str | None:
    """Why hassfest refuses `text` as a translation, or None."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(text) if name]
    except ValueError:
        return "a brace that opens or closes no placeholder"
    if not all(name.isidentifier() for name in fields):
        return "a placeholder that is not a Python identifier"
    return next(
        (why for pattern, why in _REFUSED_IN_TEXTS if pattern.search(text)), None
    )


def test_hassfest_text_rules_refuse_what_hassfest_refuses() -> None:
    """The rules hassfest applies to each text, on texts it takes and refuses."""
    for good in (
        "Could not reach InfluxDB at {url}: {error}",
        "for example http://localhost:8086 or http://a0d7b954-influxdb:8086",
        "Domain and device class, e.g. sensor__temperature",
    ):
        assert _hassfest_text_error(good) is None, good
    for bad in (
        " Leading space",
        "Press <b>Submit</b>",
        "The '{title}' entry",
        "Broken {placeholder",
        "See https://docs.example.com/influxdb",
        "See www.influxdata.com",
    ):
        assert _hassfest_text_error(bad) is not None, bad


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


def _left_in_english(
    texts: dict[tuple[str, ...], str],
    source: dict[tuple[str, ...], str],
    kept: frozenset[str],
) -> list[str]:
    """The keys of texts that are still the English text, names and `kept` aside."""
    left = []
    for path, text in texts.items():
        if text != source.get(path):
            continue
        rest = _NOT_WORDS.sub(" ", text)
        for name in PROPER_NAMES:
            rest = rest.replace(name, " ")
        if set(re.findall(r"[^\W\d_]+", rest)) - kept:
            left.append(".".join(path))
    return left


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_the_keys_and_placeholders_of_strings_json(
    language: str,
) -> None:
    """Each translations/<language>.json: the same keys and placeholders, translated.

    Only English is there while the texts change; the other languages follow once
    they are final, and this holds them to strings.json.
    """
    source = dict(_texts(_json(INTEGRATION / "strings.json")))
    texts = dict(_texts(_json(INTEGRATION / "translations" / f"{language}.json")))
    assert set(texts) == set(source), {
        "missing": sorted(".".join(p) for p in set(source) - set(texts)),
        "unknown": sorted(".".join(p) for p in set(texts) - set(source)),
    }
    assert all(isinstance(text, str) and text.strip() for text in texts.values())
    different = {
        ".".join(path): (_placeholders(source[path]), _placeholders(text))
        for path, text in texts.items()
        if _placeholders(text) != _placeholders(source[path])
    }
    assert not different, f"placeholders differ from strings.json: {different}"
    refused = {
        ".".join(path): error
        for path, text in texts.items()
        if (error := _hassfest_text_error(text)) is not None
    }
    assert not refused, refused
    if language != "en":
        kept = SAME_AS_ENGLISH.get(language, frozenset())
        left = _left_in_english(texts, source, kept)
        assert not left, f"{language}: still in English: {left}"


def test_an_english_leftover_is_found_and_names_are_not() -> None:
    """The check every language but English goes through, on texts made for it."""
    source: dict[tuple[str, ...], str] = {
        ("sentence",): "Could not reach InfluxDB at {url}: {error}",
        ("name",): "URL",
        ("version",): "InfluxDB 2.x",
        ("address",): "for example http://localhost:8086",
        ("word",): "Schema",
    }
    translated = {path: f"«{text}»" for path, text in source.items()}
    assert _left_in_english(translated, source, frozenset()) == []
    same = dict(source)
    assert _left_in_english(same, source, frozenset()) == [
        "sentence",
        "address",
        "word",
    ]
    assert _left_in_english(same, source, frozenset({"Schema"})) == [
        "sentence",
        "address",
    ]


@dataclass
class _Module:
    """One source file of the integration: its syntax tree and its runtime globals."""

    name: str
    tree: ast.Module
    module: ModuleType
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = field(
        default_factory=dict
    )

    def value(self, node: ast.expr) -> Any:
        """A literal, or a module-level name's value (e.g. CONF_URL); else None."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return getattr(self.module, node.id, None)
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.value(element) for element in node.elts]
        return None


def _modules() -> list[_Module]:
    modules = []
    for path in sorted(INTEGRATION.glob("*.py")):
        name = path.stem
        module = importlib.import_module(
            PACKAGE if name == "__init__" else f"{PACKAGE}.{name}"
        )
        tree = ast.parse(path.read_text("utf-8"))
        found = _Module(name, tree, module)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.functions.setdefault(node.name, node)
        modules.append(found)
    return modules


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _flow_sections(module: _Module) -> dict[ast.ClassDef, str]:
    """The config/options flow classes of a module, and their strings.json section."""
    sections = {}
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                name = base.attr if isinstance(base, ast.Attribute) else ""
                name = base.id if isinstance(base, ast.Name) else name
                if name in FLOW_BASES:
                    sections[node] = FLOW_BASES[name]
    return sections


def _step_ids(module: _Module, call: ast.Call) -> Iterator[str]:
    """The step ids a call shows: step_id=..., or a helper's step_id parameter."""
    if (step := _keyword(call, "step_id")) is not None:
        if isinstance(value := module.value(step), str):
            yield value
        return
    helper = module.functions.get(_call_name(call))
    if helper is None or not isinstance(call.func, ast.Attribute):
        return
    parameters = [a.arg for a in helper.args.args]
    if "step_id" in parameters:
        index = parameters.index("step_id") - 1  # after self
        if 0 <= index < len(call.args) and isinstance(
            value := module.value(call.args[index]), str
        ):
            yield value


def _literals(module: _Module, node: ast.expr | None) -> list[str]:
    """The strings a literal list (or a module-level list constant) holds."""
    listed = module.value(node) if node is not None else None
    return [v for v in listed if isinstance(v, str)] if isinstance(listed, list) else []


def _flow_call_keys(
    module: _Module, call: ast.Call, method: str, section: str
) -> Iterator[tuple[str, ...]]:
    """Keys one call in a flow uses: the step it shows, its menu, an abort."""
    name = _call_name(call)
    for step in _step_ids(module, call):
        yield (section, "step", step)
        for option in _literals(module, _keyword(call, "menu_options")):
            yield (section, "step", step, "menu_options", option)
    reason = _keyword(call, "reason") if name == "async_abort" else None
    if reason is not None and isinstance(key := module.value(reason), str):
        yield (section, "abort", key)
    if name == "_abort_if_unique_id_configured":
        yield (section, "abort", "already_configured")
    if name == "async_update_reload_and_abort":
        # Home Assistant's default reasons for the reauth and reconfigure sources.
        for source in ("reauth", "reconfigure"):
            if source in method:
                yield (section, "abort", f"{source}_successful")


def _error_keys(
    module: _Module, assign: ast.Assign, section: str
) -> Iterator[tuple[str, ...]]:
    """Errors = {field: "key", ...} and errors[field] = "key"."""
    for target in assign.targets:
        if isinstance(target, ast.Name) and "error" in target.id:
            values = assign.value.values if isinstance(assign.value, ast.Dict) else []
            keys = [module.value(value) for value in values]
        elif (
            isinstance(target, ast.Subscript)
            and isinstance(target.value, ast.Name)
            and "error" in target.value.id
        ):
            keys = [module.value(assign.value)]
        else:
            continue
        yield from ((section, "error", key) for key in keys if isinstance(key, str))


def _used_in_flow(
    module: _Module, cls: ast.ClassDef, section: str
) -> Iterator[tuple[str, ...]]:
    """Translation keys a flow class uses: steps, menus, errors, aborts."""
    for method in cls.body:
        if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(method):
                if isinstance(node, ast.Call):
                    yield from _flow_call_keys(module, node, method.name, section)
                elif isinstance(node, ast.Assign):
                    yield from _error_keys(module, node, section)


def _translation_key_call(
    module: _Module, call: ast.Call, platform: str, raised: bool
) -> Iterator[tuple[str, ...]]:
    """A call with translation_key=...: an exception, issue, selector or entity."""
    key_node = _keyword(call, "translation_key")
    key = module.value(key_node) if key_node is not None else None
    if not isinstance(key, str):
        return  # none, or computed (err.reason: see test_every_error_reason...)
    name = _call_name(call)
    if name.endswith("create_issue"):
        yield ("issues", key, "title")
        # An issue the user cannot fix in a flow explains itself in its description.
        fixable = _keyword(call, "is_fixable")
        if fixable is None or module.value(fixable) is not True:
            yield ("issues", key, "description")
    elif name.endswith("SelectorConfig"):
        yield ("selector", key)
        for option in _literals(module, _keyword(call, "options")):
            yield ("selector", key, "options", option)
    elif name.endswith("EntityDescription"):
        yield ("entity", platform, key)
    elif raised or name.endswith(("Error", "Exception", "Failed")):
        yield ("exceptions", key, "message")
    else:
        yield ("exceptions|issues", key)


def _used_elsewhere(module: _Module) -> Iterator[tuple[str, ...]]:
    """Exception, issue, selector and entity translation keys."""
    platform = module.name if module.name in PLATFORMS else "*"
    raised = {
        id(node.exc)
        for node in ast.walk(module.tree)
        if isinstance(node, ast.Raise) and node.exc is not None
    }
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Call):
            yield from _translation_key_call(module, node, platform, id(node) in raised)
        # _attr_translation_key = "key" (class attribute or self.…)
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {
                t.attr if isinstance(t, ast.Attribute) else getattr(t, "id", "")
                for t in targets
            }
            key = module.value(node.value)
            if "_attr_translation_key" in names and isinstance(key, str):
                yield ("entity", platform, key)


def _schema_keys(module: _Module) -> set[str]:
    """The fields of the forms a flow module builds: Required(...) and Optional(...)."""
    keys = set()
    for node in ast.walk(module.tree):
        if (
            isinstance(node, ast.Call)
            and _call_name(node) in {"Required", "Optional"}
            and node.args
            and isinstance(key := module.value(node.args[0]), str)
        ):
            keys.add(key)
    return keys


def _lookup(strings: Any, path: tuple[str, ...]) -> bool:
    """Whether `path` exists; "*" matches any key, "a|b" either one."""
    if not path:
        return True
    if not isinstance(strings, dict):
        return False
    head, rest = path[0], path[1:]
    candidates = (
        strings.values()
        if head == "*"
        else [strings[h] for h in head.split("|") if h in strings]
    )
    return any(_lookup(candidate, rest) for candidate in candidates)


@pytest.mark.parametrize("file", ["strings.json", "translations/en.json"])
def test_every_translation_key_used_in_code_exists(file: str) -> None:
    """Each key the code names (or shows a form field for) has its text."""
    strings = _json(INTEGRATION / file)
    used: set[tuple[str, ...]] = set()
    labels_missing: set[str] = set()
    for module in _modules():
        used |= set(_used_elsewhere(module))
        sections = _flow_sections(module)
        for cls, section in sections.items():
            used |= set(_used_in_flow(module, cls, section))
        # Every form field has a label in some step of the module's flows.
        labels_missing |= {
            f"{module.name}: {key}"
            for key in (_schema_keys(module) if sections else set())
            if not any(
                _lookup(strings, (section, "step", "*", part, key))
                for section in set(sections.values())
                for part in ("data", "sections")
            )
        }
    missing = sorted(".".join(key) for key in used if not _lookup(strings, key))
    assert not missing, f"used in code, missing in {file}: {missing}"
    assert not labels_missing, (
        f"fields without a label in {file}: {sorted(labels_missing)}"
    )
    assert used, "found no translation keys in the code at all: is the scan broken?"


def test_every_error_reason_is_translated() -> None:
    """Each reason an InfluxError can carry reads well in the form.

    (Reasons reach the form through err.reason, which the scan above cannot follow.)
    """
    strings = _json(INTEGRATION / "strings.json")
    reasons = {
        cls.reason
        for cls in vars(influx_errors).values()
        if isinstance(cls, type) and issubclass(cls, influx_errors.InfluxError)
    }
    reasons |= {
        influx_errors.InfluxNotFoundError(missing, "").reason
        for missing in (
            CONF_DATABASE,
            CONF_RETENTION_POLICY,
            CONF_ORGANIZATION,
            CONF_BUCKET,
        )
    }
    reasons.add(influx_errors.InfluxInvalidNameError(CONF_DATABASE, "").reason)
    assert reasons <= set(strings["config"]["error"])


# --- Actions: services.yaml -------------------------------------------------------------


def registered_actions() -> set[str]:
    """The actions the integration's code registers, whatever helper it uses."""
    actions = set()
    for module in _modules():
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            # hass.services.async_register(DOMAIN, name, ...) and .register(...)
            receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
            if (
                name in {"async_register", "register"}
                and isinstance(receiver, ast.Attribute)
                and receiver.attr == "services"
            ):
                position = 1
            elif name in {
                "async_register_admin_service",
                "async_register_platform_entity_service",
            }:
                position = 2  # (hass, DOMAIN, name, ...)
            elif name == "async_register_entity_service":
                position = 0  # platform.async_register_entity_service(name, ...)
            else:
                continue
            argument = (
                node.args[position]
                if len(node.args) > position
                else _keyword(node, "service")
            )
            action = module.value(argument) if argument is not None else None
            assert isinstance(action, str), (
                f"{module.name}: cannot tell which action line {node.lineno} registers"
            )
            actions.add(action)
    return actions


def test_services_yaml_matches_registered_actions() -> None:
    """services.yaml exists exactly when actions are registered, and lists them."""
    actions = registered_actions()
    path = INTEGRATION / "services.yaml"
    strings = _json(INTEGRATION / "translations" / "en.json")
    if not path.exists():
        assert not actions, f"registers {sorted(actions)} but has no services.yaml"
        assert "services" not in strings, "services translated but none registered"
        return
    services = load_yaml_dict(path)
    assert set(services) == actions, (
        f"services.yaml lists {sorted(services)}, the code registers {sorted(actions)}"
    )
    assert set(strings.get("services", {})) == actions, (
        f"en.json translates actions {sorted(strings.get('services', {}))}"
    )
    for action, schema in services.items():
        texts = strings["services"][action]
        for key in ("name", "description"):
            assert key in (schema or {}) or key in texts, f"{action} has no {key}"
        for name, field_schema in ((schema or {}).get("fields") or {}).items():
            if "fields" in (field_schema or {}):  # a section of fields
                continue
            field_texts = texts.get("fields", {}).get(name, {})
            assert "name" in (field_schema or {}) or "name" in field_texts, (
                f"{action}: field {name} has no name"
            )


# --- quality_scale.yaml -----------------------------------------------------------------

QUALITY_SCALE_RULES = {
    # Bronze
    "action-setup",
    "appropriate-polling",
    "brands",
    "common-modules",
    "config-flow",
    "config-flow-test-coverage",
    "dependency-transparency",
    "docs-actions",
    "docs-conditions",
    "docs-high-level-description",
    "docs-installation-instructions",
    "docs-removal-instructions",
    "docs-triggers",
    "entity-event-setup",
    "entity-unique-id",
    "has-entity-name",
    "runtime-data",
    "test-before-configure",
    "test-before-setup",
    "unique-config-entry",
    # Silver
    "action-exceptions",
    "config-entry-unloading",
    "docs-configuration-parameters",
    "docs-installation-parameters",
    "entity-unavailable",
    "integration-owner",
    "log-when-unavailable",
    "parallel-updates",
    "reauthentication-flow",
    "test-coverage",
    # Gold
    "devices",
    "diagnostics",
    "discovery",
    "discovery-update-info",
    "docs-data-update",
    "docs-examples",
    "docs-known-limitations",
    "docs-supported-devices",
    "docs-supported-functions",
    "docs-troubleshooting",
    "docs-use-cases",
    "dynamic-devices",
    "entity-category",
    "entity-device-class",
    "entity-disabled-by-default",
    "entity-translations",
    "exception-translations",
    "icon-translations",
    "reconfiguration-flow",
    "repair-issues",
    "stale-devices",
    # Platinum
    "async-dependency",
    "inject-websession",
    "strict-typing",
}


def _statuses() -> dict[str, str]:
    rules = load_yaml_dict(INTEGRATION / "quality_scale.yaml")["rules"]
    statuses = {}
    for name, value in rules.items():
        if isinstance(value, str):
            statuses[name] = value
            continue
        assert set(value) <= {"status", "comment"}, f"{name}: {sorted(value)}"
        statuses[name] = value["status"]
        if value["status"] == "exempt":
            assert str(value.get("comment", "")).strip(), f"{name}: exempt, no reason"
    return statuses


def test_quality_scale_rules_and_statuses() -> None:
    """Every rule, by its real name, with a status hassfest knows."""
    assert set(load_yaml_dict(INTEGRATION / "quality_scale.yaml")) == {"rules"}
    statuses = _statuses()
    assert set(statuses) - QUALITY_SCALE_RULES == set(), "unknown rules"
    assert QUALITY_SCALE_RULES - set(statuses) == set(), "rules not declared"
    assert set(statuses.values()) <= {"done", "todo", "exempt"}
    for name, status in statuses.items():
        if status == "exempt":
            raw = load_yaml_dict(INTEGRATION / "quality_scale.yaml")["rules"][name]
            assert isinstance(raw, dict), f"{name}: exempt needs a comment"


def test_quality_scale_claims_match_the_code() -> None:
    """What hassfest's rule checks would look for, where a rule says done."""
    statuses = _statuses()
    source = {p.stem: p.read_text("utf-8") for p in INTEGRATION.glob("*.py")}
    evidence = {
        "config-flow": "config_flow" in source,
        "config-entry-unloading": "async_unload_entry" in source["__init__"],
        "reauthentication-flow": "async_step_reauth" in source.get("config_flow", ""),
        "reconfiguration-flow": "async_step_reconfigure"
        in source.get("config_flow", ""),
        "runtime-data": "runtime_data" in source["__init__"],
        "diagnostics": "async_get_config_entry_diagnostics"
        in source.get("diagnostics", ""),
        "brands": (INTEGRATION / "brand" / "icon.png").is_file(),
    }
    wrong = [
        rule for rule, ok in evidence.items() if statuses[rule] == "done" and not ok
    ]
    assert not wrong, f"marked done without the code for it: {wrong}"
    if registered_actions():
        assert statuses["action-setup"] != "exempt", "actions exist: not exempt"
