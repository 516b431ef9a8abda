"""Pure tests of worker.settings: the environment and the TOML config (DESIGN §3)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from connectors.base import ModelTarget
from worker.errors import ConfigError
from worker.settings import (
    ConnectionConfig,
    WritebackConfig,
    expand_vars,
    load_config_file,
    load_settings,
    parse_config,
    secret_from_env,
)

SECRET = "s3cr3t-T0KEN-value-42"
OTHER_SECRET = "another-Very-Secret-99"


def write_config(tmp_path: Path, text: str, name: str = "writeback.toml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def config_error(text: str, tmp_path: Path, env: dict[str, str] | None = None) -> str:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings({"WRITEBACK_CONFIG": path, **(env or {})})
    message = str(info.value)
    assert "\n" not in message.strip(), "a ConfigError is one line"
    return message


@pytest.fixture(autouse=True)
def _no_default_config(tmp_path, monkeypatch):
    # config/writeback.toml is looked up relative to the working directory.
    monkeypatch.chdir(tmp_path)


# -- the environment -----------------------------------------------------------------


def test_defaults():
    settings = load_settings({})
    assert settings.siro_api_url == "https://functions.siro.ai/api-externalApi"
    assert settings.siro_api_token is None
    assert settings.config_path is None
    assert settings.broker_url == "redis://localhost:6379/0"
    assert settings.database_url == "sqlite:///writeback.db"
    assert settings.webhook_secret is None
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.config.connections == []
    assert settings.config.poll.interval_s == 60
    assert settings.config.poll.lookback_h == 24
    assert settings.config.poll.overlap_s == 60
    assert settings.config.poll.page_size == 100
    assert (settings.config.retry.max_retries, settings.config.retry.base_s, settings.config.retry.max_s) == (8, 2, 60)


def test_environment_values():
    settings = load_settings({
        "SIRO_API_URL": "https://siro.example/api/",
        "SIRO_API_TOKEN": SECRET,
        "WRITEBACK_BROKER_URL": "redis://broker:6379/1",
        "WRITEBACK_DATABASE_URL": "postgresql://u:p@db/writeback",
        "WRITEBACK_WEBHOOK_SECRET": OTHER_SECRET,
    })
    assert settings.siro_api_url == "https://siro.example/api"
    assert settings.require_siro_token() == SECRET
    assert settings.broker_url == "redis://broker:6379/1"
    assert settings.redis_url == "redis://broker:6379/1"  # defaults to the broker URL
    assert settings.database_url == "postgresql://u:p@db/writeback"
    assert settings.webhook_secret.get_secret_value() == OTHER_SECRET
    assert SECRET not in repr(settings) and OTHER_SECRET not in repr(settings)


def test_settings_built_directly_default_redis_to_the_broker():
    from worker.settings import Settings

    assert Settings(broker_url="redis://broker:6379/3").redis_url == "redis://broker:6379/3"
    assert Settings().redis_url == "redis://localhost:6379/0"
    assert Settings(broker_url="redis://b/1", redis_url="redis://c/2").redis_url == "redis://c/2"


def test_redis_url_of_its_own():
    settings = load_settings({"WRITEBACK_BROKER_URL": "redis://broker/1", "WRITEBACK_REDIS_URL": "redis://cache/2"})
    assert settings.redis_url == "redis://cache/2"


def test_missing_token_is_a_config_error_naming_both_variables():
    with pytest.raises(ConfigError, match="SIRO_API_TOKEN.*SIRO_API_TOKEN_FILE"):
        load_settings({}).require_siro_token()


def test_siro_api_token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(SECRET + "\n", encoding="utf-8")
    settings = load_settings({"SIRO_API_TOKEN_FILE": str(path)})
    assert settings.require_siro_token() == SECRET


def test_variable_wins_over_its_file(tmp_path):
    path = tmp_path / "token"
    path.write_text("from-file", encoding="utf-8")
    assert secret_from_env("X", {"X": "direct", "X_FILE": str(path)}) == "direct"
    assert secret_from_env("X", {"X_FILE": str(path)}) == "from-file"
    assert secret_from_env("X", {}) is None


@pytest.mark.parametrize("name", ["WRITEBACK_WEBHOOK_SECRET", "WRITEBACK_DATABASE_URL", "WRITEBACK_BROKER_URL",
                                  "WRITEBACK_REDIS_URL"])
def test_every_secret_variable_takes_a_file(tmp_path, name):
    path = tmp_path / "secret"
    path.write_text("redis://u:" + SECRET + "@host/0\n", encoding="utf-8")
    settings = load_settings({f"{name}_FILE": str(path)})
    values = {
        "WRITEBACK_WEBHOOK_SECRET": settings.webhook_secret and settings.webhook_secret.get_secret_value(),
        "WRITEBACK_DATABASE_URL": settings.database_url,
        "WRITEBACK_BROKER_URL": settings.broker_url,
        "WRITEBACK_REDIS_URL": settings.redis_url,
    }
    assert values[name] == "redis://u:" + SECRET + "@host/0"


def test_unreadable_secret_file_names_the_variable_not_a_secret(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match="SIRO_API_TOKEN_FILE") as info:
        load_settings({"SIRO_API_TOKEN_FILE": str(missing), "WRITEBACK_WEBHOOK_SECRET": SECRET})
    assert SECRET not in str(info.value)


def test_secret_file_that_is_a_directory_or_binary_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="SIRO_API_TOKEN_FILE"):
        load_settings({"SIRO_API_TOKEN_FILE": str(tmp_path)})
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ConfigError, match="SIRO_API_TOKEN_FILE"):
        load_settings({"SIRO_API_TOKEN_FILE": str(binary)})


# -- finding and reading the config file ------------------------------------------------------


def test_writeback_config_missing_file():
    with pytest.raises(ConfigError, match="not found.*/nowhere/writeback.toml"):
        load_settings({"WRITEBACK_CONFIG": "/nowhere/writeback.toml"})


def test_writeback_config_is_a_directory(tmp_path):
    with pytest.raises(ConfigError, match=str(tmp_path)):
        load_settings({"WRITEBACK_CONFIG": str(tmp_path)})


def test_invalid_toml(tmp_path):
    path = write_config(tmp_path, "[poll\ninterval_s = 60\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"WRITEBACK_CONFIG": path})


def test_config_file_not_utf8(tmp_path):
    path = tmp_path / "writeback.toml"
    path.write_bytes(b'[poll]\ninterval_s = "\xff"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"WRITEBACK_CONFIG": str(path)})


def test_toml_error_does_not_quote_the_file(tmp_path):
    message = config_error('[[connections]]\nconnector = "salesforce"\naccess_token = hunter2-literal\n', tmp_path)
    assert "hunter2-literal" not in message and "line 3" in message


def test_bad_deny_entry_is_quoted_when_it_is_literal(tmp_path):
    message = config_error('[[connections]]\nconnector = "salesforce"\nfields = { deny = ["OwnerId"] }\n', tmp_path)
    assert "'OwnerId'" in message and "Object.Field" in message


def test_default_config_path_is_used_when_present(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "writeback.toml").write_text("[poll]\ninterval_s = 5\n", encoding="utf-8")
    settings = load_settings({})
    assert settings.config_path == "config/writeback.toml"
    assert settings.config.poll.interval_s == 5


def test_writeback_config_wins_over_the_default_path(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "writeback.toml").write_text("[poll]\ninterval_s = 5\n", encoding="utf-8")
    path = write_config(tmp_path, "[poll]\ninterval_s = 7\n", name="other.toml")
    assert load_settings({"WRITEBACK_CONFIG": path}).config.poll.interval_s == 7


FULL = """
    [[connections]]
    integration_connection_id = "*"
    connector = "salesforce"
    instance_url = "https://acme.my.salesforce.com"
    name = "salesforce-main"
    access_token = "${SALESFORCE_ACCESS_TOKEN}"
    api_version = "60.0"

    [connections.models]
    "Appointment__c" = { slot = "engagement", object = "Appointment__c" }

    [connections.fields]
    deny = ["Opportunity.OwnerId"]
    write_nulls = true
    policy = { "Opportunity.StageName" = "fill_empty" }

    [connections.slots]
    contacts = "first"

    [connections.rate_limit]
    requests = 190
    per_s = 10
    concurrency = 10

    [[connections]]
    integration_connection_id = "hs-42"
    connector = "hubspot"
    access_token = "${HUBSPOT_TOKEN}"

    [poll]
    interval_s = 30
    lookback_h = 48
    overlap_s = 90
    page_size = 50

    [retry]
    max_retries = 3
    base_s = 1
    max_s = 30
"""


def test_full_config(tmp_path):
    path = write_config(tmp_path, FULL)
    settings = load_settings({"WRITEBACK_CONFIG": path, "SALESFORCE_ACCESS_TOKEN": SECRET, "HUBSPOT_TOKEN": OTHER_SECRET})
    config = settings.config
    assert settings.config_path == path
    sf, hs = config.connections
    assert sf.display_name == "salesforce-main" and sf.connector == "salesforce"
    assert sf.options == {"instance_url": "https://acme.my.salesforce.com", "access_token": SECRET, "api_version": "60.0"}
    assert sf.fields.deny == ["Opportunity.OwnerId"] and sf.fields.write_nulls is True
    assert sf.fields.policy_for("opportunity", "stagename") == "fill_empty"
    assert sf.fields.policy_for("Opportunity", "Amount") == "overwrite"
    assert sf.slots == {"contacts": "first"}
    assert (sf.rate_limit.requests, sf.rate_limit.per_s, sf.rate_limit.concurrency) == (190, 10, 10)
    assert sf.model_map({"deal": ModelTarget("opportunity", "Opportunity")}) == {
        "deal": ModelTarget("opportunity", "Opportunity"),
        "appointment__c": ModelTarget("engagement", "Appointment__c"),
    }
    assert hs.display_name == "hubspot" and hs.options == {"access_token": OTHER_SECRET}
    assert hs.fields.deny == [] and hs.fields.write_nulls is False and hs.rate_limit is None
    assert (config.poll.interval_s, config.poll.lookback_h, config.poll.overlap_s, config.poll.page_size) == (30, 48, 90, 50)
    assert (config.retry.max_retries, config.retry.base_s, config.retry.max_s) == (3, 1, 30)


def test_parse_config_expands_without_modifying_the_parsed_toml():
    raw = {"connections": [{"connector": "salesforce", "instance_url": "https://x", "access_token": "${T}"}]}
    config = parse_config(raw, {"T": SECRET})
    assert config.connections[0].options["access_token"] == SECRET
    assert raw["connections"][0]["access_token"] == "${T}"  # the parsed TOML is not modified


# -- ${VAR} expansion ---------------------------------------------------------------------------


def test_expansion_in_nested_tables_and_arrays():
    tree = {
        "a": "${ONE}",
        "b": {"c": ["x-${TWO}-y", {"d": "${ONE}${TWO}"}], "n": 5, "t": True},
        "e": "no vars $HOME ${ not a var }",
    }
    assert expand_vars(tree, {"ONE": "1", "TWO": "2"}) == {
        "a": "1",
        "b": {"c": ["x-2-y", {"d": "12"}], "n": 5, "t": True},
        "e": "no vars $HOME ${ not a var }",
    }


def test_expansion_is_not_recursive():
    assert expand_vars("${A}", {"A": "${B}", "B": "boom"}) == "${B}"


def test_expansion_falls_back_to_var_file(tmp_path):
    path = tmp_path / "sf-token"
    path.write_text(SECRET + "\n", encoding="utf-8")
    config = parse_config(
        {"connections": [{"connector": "salesforce", "access_token": "${SF_TOKEN}"}]}, {"SF_TOKEN_FILE": str(path)}
    )
    assert config.connections[0].options["access_token"] == SECRET


def test_unset_variable_is_named(tmp_path):
    message = config_error(FULL, tmp_path, {"SALESFORCE_ACCESS_TOKEN": SECRET})
    assert "HUBSPOT_TOKEN" in message
    assert "connections[1].access_token" in message
    assert SECRET not in message


def test_unset_variable_in_an_array_is_named():
    with pytest.raises(ConfigError, match=r"MISSING_VAR") as info:
        parse_config({"connections": [{"connector": "salesforce", "scopes": ["a", "${MISSING_VAR}"]}]},
                     {"OTHER": SECRET})
    assert "connections[0].scopes[1]" in str(info.value)
    assert SECRET not in str(info.value)


# -- strictness and messages ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,key",
    [
        ("[poll]\nintervall_s = 5\n", "intervall_s"),
        ("[retry]\nmax_retry = 5\n", "max_retry"),
        ('[[connections]]\nconnector = "salesforce"\n[connections.fields]\nwrite_null = true\n', "write_null"),
        ('[[connections]]\nconnector = "salesforce"\n[connections.rate_limit]\nrequest = 1\n', "request"),
        ('[[connections]]\nconnector = "salesforce"\n[connections.models]\nX = { slot = "lead", objet = "X" }\n',
         "objet"),
        ("[pol]\ninterval_s = 5\n", "pol"),
    ],
)
def test_unknown_keys_are_rejected_and_named(tmp_path, text, key):
    message = config_error(text, tmp_path)
    assert key in message and "writeback.toml" in message


def test_connector_keys_are_kept_in_options():
    config = parse_config({"connections": [{
        "connector": "salesforce", "username": "u@x", "password": "p", "security_token": "t", "domain": "test",
        "consumer_key": "ck", "private_key_file": "/k.pem", "api_version": "60.0",
    }]}, {})
    assert config.connections[0].options == {
        "username": "u@x", "password": "p", "security_token": "t", "domain": "test",
        "consumer_key": "ck", "private_key_file": "/k.pem", "api_version": "60.0",
    }
    assert "connector" not in config.connections[0].options


def test_connection_needs_a_connector(tmp_path):
    message = config_error('[[connections]]\nname = "x"\n', tmp_path)
    assert "connector" in message


def test_duplicate_connection_names_are_rejected(tmp_path):
    message = config_error(
        '[[connections]]\nconnector = "salesforce"\nintegration_connection_id = "a"\n'
        '[[connections]]\nconnector = "salesforce"\nintegration_connection_id = "b"\n',
        tmp_path,
    )
    assert "salesforce" in message and "name" in message


def test_duplicate_integration_connection_ids_are_rejected(tmp_path):
    message = config_error(
        '[[connections]]\nconnector = "salesforce"\n'
        '[[connections]]\nconnector = "hubspot"\n',
        tmp_path,
    )
    assert "'*'" in message


def test_integer_integration_connection_id_is_read_as_text():
    config = parse_config({"connections": [{"connector": "hubspot", "integration_connection_id": 1234}]}, {})
    assert config.connection_for("1234") is config.connections[0]


@pytest.mark.parametrize("page_size", [0, 101, -1])
def test_page_size_bounds(tmp_path, page_size):
    message = config_error(f"[poll]\npage_size = {page_size}\n", tmp_path)
    assert "poll.page_size" in message


@pytest.mark.parametrize("page_size", [1, 100])
def test_page_size_limits_are_allowed(page_size):
    assert parse_config({"poll": {"page_size": page_size}}, {}).poll.page_size == page_size


@pytest.mark.parametrize("text,key", [("[poll]\ninterval_s = 0\n", "poll.interval_s"),
                                      ("[poll]\noverlap_s = -1\n", "poll.overlap_s"),
                                      ("[poll]\nlookback_h = -1\n", "poll.lookback_h"),
                                      ("[retry]\nmax_retries = -1\n", "retry.max_retries")])
def test_negative_durations_are_rejected(tmp_path, text, key):
    assert key in config_error(text, tmp_path)


@pytest.mark.parametrize(
    "table,key",
    [('rate_limit = { requests = 0 }', "rate_limit.requests"),
     ('rate_limit = { per_s = 0 }', "rate_limit.per_s"),
     ('rate_limit = { concurrency = 0 }', "rate_limit.concurrency"),
     ('fields = { policy = { "Opportunity.StageName" = "sometimes" } }', "policy"),
     ('fields = { deny = ["OwnerId"] }', "deny"),
     ('fields = { policy = { "StageName" = "fill_empty" } }', "policy"),
     ('slots = { contacts = "last" }', "slots"),
     ('slots = { deals = "first" }', "slots"),
     ('models = { X = { slot = "deals", object = "X" } }', "slot")],
)
def test_invalid_connection_tables(tmp_path, table, key):
    message = config_error(f'[[connections]]\nconnector = "salesforce"\n{table}\n', tmp_path)
    assert key in message


def test_deny_and_policy_entries_match_case_insensitively_and_ignore_blanks():
    conn = ConnectionConfig.model_validate({
        "connector": "salesforce",
        "fields": {"deny": [" Opportunity.OwnerId "], "policy": {" opportunity.stagename ": "protect_edits"}},
    })
    assert conn.fields.denies("OPPORTUNITY", "ownerid")
    assert not conn.fields.denies("Opportunity", "Owner")
    assert not conn.fields.denies("Account", "OwnerId")
    assert conn.fields.policy_for("Opportunity", "StageName") == "protect_edits"


def test_config_error_never_contains_a_secret_from_the_environment(tmp_path):
    # Every kind of error, with secrets in the environment and in expanded values.
    env = {"SF_TOKEN": SECRET, "SIRO_API_TOKEN": OTHER_SECRET, "WRITEBACK_WEBHOOK_SECRET": OTHER_SECRET}
    texts = [
        '[[connections]]\nconnector = "salesforce"\naccess_token = "${SF_TOKEN}"\n[poll]\nbogus = 1\n',
        '[[connections]]\nconnector = "salesforce"\naccess_token = "${SF_TOKEN}"\npassword = "${UNSET_ONE}"\n',
        '[[connections]]\nconnector = "${SF_TOKEN}"\nfields = { write_nulls = "${SF_TOKEN}" }\n',
        '[[connections]]\nconnector = "salesforce"\nname = "${SF_TOKEN}"\n'
        '[[connections]]\nconnector = "hubspot"\nname = "${SF_TOKEN}"\nintegration_connection_id = "x"\n',
        '[[connections]]\nconnector = "salesforce"\nfields = { deny = ["${SF_TOKEN}"] }\n',
        '[[connections]]\nconnector = "salesforce"\nslots = { contacts = "${SF_TOKEN}" }\n',
        '[[connections]]\nconnector = "salesforce"\nrate_limit = { requests = "${SF_TOKEN}" }\n',
        '[poll]\npage_size = "${SF_TOKEN}"\n',
        '[[connections]]\nconnector = "salesforce"\nmodels = { X = { slot = "${SF_TOKEN}" } }\n',
        '[[connections]]\nconnector = "salesforce"\nfields = { policy = { "${SF_TOKEN}" = "fill_empty" } }\n',
        '[[connections]]\nconnector = "salesforce"\nfields = { policy = { "A.B" = "${SF_TOKEN}" } }\n',
        'access = "${SF_TOKEN}"\n',
    ]
    for text in texts:
        message = config_error(text, tmp_path, env)
        assert SECRET not in message, (text, message)
        assert OTHER_SECRET not in message, (text, message)


def test_config_error_masks_a_secret_even_as_repr_quotes_it():
    secret = "back\\slash\n'and\"quotes"
    with pytest.raises(ConfigError) as info:
        parse_config({"connections": [{"connector": "salesforce", "fields": {"deny": ["${S}"]}}]}, {"S": secret})
    message = str(info.value)
    assert "slash" not in message and "quotes" not in message and "fields.deny" in message


# -- choosing a connection -------------------------------------------------------------------------


def test_connection_for():
    config = WritebackConfig.model_validate({"connections": [
        {"connector": "salesforce", "integration_connection_id": "*", "name": "fallback"},
        {"connector": "hubspot", "integration_connection_id": "hs-42"},
    ]})
    assert config.connection_for("hs-42").display_name == "hubspot"
    assert config.connection_for("sf-other").display_name == "fallback"
    assert config.connection_for(None).display_name == "fallback"
    assert config.connection_for("").display_name == "fallback"


def test_connection_for_without_fallback():
    config = WritebackConfig.model_validate({"connections": [
        {"connector": "hubspot", "integration_connection_id": "hs-42"}]})
    assert config.connection_for("hs-42") is config.connections[0]
    assert config.connection_for("other") is None
    assert config.connection_for(None) is None
    assert WritebackConfig().connection_for("hs-42") is None


def test_connection_for_exact_id_wins_whatever_the_order():
    config = WritebackConfig.model_validate({"connections": [
        {"connector": "hubspot", "integration_connection_id": "*", "name": "any"},
        {"connector": "hubspot", "integration_connection_id": "hs-42", "name": "exact"},
    ]})
    assert config.connection_for("hs-42").display_name == "exact"


def test_model_map_overrides_are_folded_and_win():
    conn = ConnectionConfig.model_validate({"connector": "salesforce", "models": {
        "APPOINTMENT": {"slot": "engagement", "object": "Appointment__c"},
        "Owner": {"slot": "users"},
    }})
    merged = conn.model_map({"appointment": ModelTarget("engagement", "Event"), "Event": ModelTarget("engagement", "Event")})
    assert merged == {
        "appointment": ModelTarget("engagement", "Appointment__c"),
        "event": ModelTarget("engagement", "Event"),
        "owner": ModelTarget("users", None),
    }


REPO = Path(__file__).resolve().parent.parent


def test_the_shipped_example_config_loads():
    env = {"WRITEBACK_CONFIG": str(REPO / "config" / "writeback.example.toml"), "SALESFORCE_ACCESS_TOKEN": SECRET}
    config = load_settings(env).config
    (sf,) = config.connections
    assert sf.display_name == "salesforce-main" and sf.options["access_token"] == SECRET
    assert sf.fields.denies("Opportunity", "OwnerId")
    assert sf.fields.policy_for("Opportunity", "NextStep") == "protect_edits"


def test_the_shipped_example_config_names_its_unset_variable():
    with pytest.raises(ConfigError, match="SALESFORCE_ACCESS_TOKEN"):
        load_settings({"WRITEBACK_CONFIG": str(REPO / "config" / "writeback.example.toml")})


def test_the_demo_defaults_load():
    path = REPO / "worker" / "cli" / "demo.toml"
    env = {name: "https://x" for name in ("DEMO_HUBSPOT_TOKEN", "DEMO_HUBSPOT_URL", "DEMO_SALESFORCE_TOKEN",
                                          "DEMO_SALESFORCE_URL")}
    assert len(load_config_file(path, env).connections) == 2


# -- a process's config, checked before any work (worker.runtime.load) ---------------------------


def _connection_file(tmp_path, **keys):
    lines = ["[[connections]]", 'connector = "hubspot"', 'name = "hs"', 'access_token = "${HS_TOKEN}"']
    lines += [f"{key} = {value!r}".replace("'", '"') for key, value in keys.items()]
    path = tmp_path / "writeback.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_a_process_that_talks_to_no_crm_loads_without_the_crm_secret(tmp_path):
    from worker.runtime import load
    from worker.settings import MissingSecret

    path = _connection_file(tmp_path)
    settings = load(config_path=path, env={}, talks_to_crm=False)
    token = settings.config.connections[0].options["access_token"]
    assert isinstance(token, MissingSecret) and token.variable == "HS_TOKEN"

    with pytest.raises(ConfigError, match=r"config connections\[0\].access_token uses \$\{HS_TOKEN\} but HS_TOKEN"):
        load(config_path=path, env={}, talks_to_crm=True)
    assert load(config_path=path, env={"HS_TOKEN": "pat-na1-0000"}).config.connections[0].options[
        "access_token"] == "pat-na1-0000"


def test_a_connector_key_typo_fails_every_process_even_those_that_talk_to_no_crm(tmp_path):
    from worker.runtime import load

    path = _connection_file(tmp_path, apiurl="https://api.hubapi.com")
    for talks_to_crm in (True, False):
        with pytest.raises(ConfigError, match="connection 'hs': unknown key 'apiurl' for connector 'hubspot'"):
            load(config_path=path, env={"HS_TOKEN": "pat-na1-0000"}, talks_to_crm=talks_to_crm)


def test_an_option_the_connector_refuses_fails_where_the_connector_is_built(tmp_path):
    from worker.runtime import load

    path = _connection_file(tmp_path, api_url="ftp://nope")
    with pytest.raises(ConfigError, match="'api_url' must be an http"):
        load(config_path=path, env={"HS_TOKEN": "pat-na1-0000"})
    load(config_path=path, env={}, talks_to_crm=False)  # beat builds no connector: its keys are fine


def test_mode_and_allow_are_checked_like_any_key():
    config = parse_config({"connections": [{"connector": "hubspot", "mode": "shadow",
                                            "fields": {"allow": ["deals.amount"]}}]}, env={})
    connection = config.connections[0]
    assert connection.mode == "shadow" and connection.fields.allows("deals", "AMOUNT")
    assert not connection.fields.allows("deals", "dealstage")
    assert parse_config({"connections": [{"connector": "hubspot"}]}, env={}).connections[0].mode == "live"
    with pytest.raises(ConfigError, match="mode"):
        parse_config({"connections": [{"connector": "hubspot", "mode": "dry"}]}, env={})
    with pytest.raises(ConfigError, match="allow entry 'amount' must be Object.Field"):
        parse_config({"connections": [{"connector": "hubspot", "fields": {"allow": ["amount"]}}]}, env={})


@pytest.mark.parametrize("entry", ["Opportunity. Amount", "Opportunity .Amount", "Opp ortunity.Amount"])
def test_a_rule_entry_with_spaces_inside_is_refused_rather_than_matching_nothing(entry):
    """``deny = ["Opportunity. Amount"]`` would deny nothing, and the field would be written."""
    for rules in ({"deny": [entry]}, {"allow": [entry]}, {"policy": {entry: "fill_empty"}}):
        with pytest.raises(ConfigError, match="without spaces"):
            parse_config({"connections": [{"connector": "hubspot", "fields": rules}]}, env={})
