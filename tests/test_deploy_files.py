"""The deploy files (Dockerfile, .dockerignore, deploy/railway.toml, deploy/docker-compose.yml,
requirements.lock) agree with the code: real setting names, the right port, the health path,
the binlog flags wacdc needs, mounts of files that exist. Pure: no servers, no Docker.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest
import yaml
from packaging.requirements import Requirement
from pydantic import AliasChoices

from wacdc.config import Settings, parse_url

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
RAILWAY = DEPLOY / "railway.toml"
COMPOSE = DEPLOY / "docker-compose.yml"
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
HEALTH_SRC = ROOT / "src" / "wacdc" / "observe" / "http.py"

HEALTH_PATH = "/healthz"
DEFAULT_PORT = Settings.model_fields["metrics_port"].default  # 9108

# MySQL server options wacdc's `check` wants (option name -> required value; None: any).
MYSQL_FLAGS = {
    "server-id": None,
    "log-bin": None,
    "binlog-format": "ROW",
    "binlog-row-image": "FULL",
    "binlog-row-metadata": "FULL",
    "gtid-mode": "ON",
    "enforce-gtid-consistency": "ON",
}


# --- helpers -----------------------------------------------------------------------------------


def setting_env_names() -> set[str]:
    """Every environment variable name Settings reads (the upper-case alias choices)."""
    names: set[str] = set()
    for f in Settings.model_fields.values():
        alias = f.validation_alias
        if isinstance(alias, AliasChoices):
            choices = alias.choices
        elif isinstance(alias, str):
            choices = [alias]
        else:
            choices = []
        names.update(c for c in choices if isinstance(c, str) and c.isupper())
    return names


def normalize_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions grouped into stages; `\\` continuations joined, comment lines dropped."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):  # comments inside a continuation
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        joined = " ".join(part for part in buffer if part)
        buffer = []
        keyword, _, args = joined.partition(" ")
        assert keyword == keyword.upper(), f"Dockerfile line {start}: write {keyword.upper()}"
        instructions.append(Instruction(keyword, args.strip(), start))
    assert not buffer, "Dockerfile ends inside a line continuation"

    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
            stages.append(Stage(words[0], name))
        elif ins.keyword not in {"ARG"} or stages:
            assert stages, f"Dockerfile line {ins.line}: {ins.keyword} before FROM"
            stages[-1].instructions.append(ins)
    return stages


def command_words(args: str) -> list[str]:
    """Exec form (JSON array) or shell form, as words."""
    if args.startswith("["):
        words = json.loads(args)
        assert isinstance(words, list)
        return words
    return shlex.split(args)


def env_assignments(args: str) -> dict[str, str]:
    """`ENV A=1 B=2` or legacy `ENV A 1`."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(w.split("=", 1) for w in words)


def copy_sources(ins: Instruction) -> list[str]:
    words = [w for w in shlex.split(ins.args) if not w.startswith("--")]
    return words[:-1]


def is_from_context(ins: Instruction) -> bool:
    return ins.keyword in {"COPY", "ADD"} and "--from=" not in ins.args


def compose_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def compose_mounts(service: dict) -> list[tuple[str, str]]:
    """(host path, container path) of each bind mount, host paths relative to deploy/."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            mounts.append((volume["source"], volume["target"]))
        else:
            host, container, *_ = volume.split(":")
            mounts.append((host, container))
    return mounts


def mysql_options(command: str | list[str]) -> dict[str, str | None]:
    words = shlex.split(command) if isinstance(command, str) else [str(w) for w in command]
    options: dict[str, str | None] = {}
    for word in words:
        if word.startswith("--"):
            name, sep, value = word[2:].partition("=")
            options[name.replace("_", "-").lower()] = value if sep else None
    return options


def published_container_ports(service: dict) -> set[int]:
    ports = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).split(":")[-1].split("/")[0]))
    return ports


def lock_pins(text: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) from a pip-compile --generate-hashes file."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    for line in text.replace("\\\n", " ").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)(.*)$", line)
        assert match, f"requirements.lock: unexpected line {line!r}"
        current = normalize_name(match.group(1))
        hashes = re.findall(r"--hash=(sha256:[0-9a-f]{64})", match.group(3))
        pins[current] = (match.group(2), hashes)
    return pins


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def railway() -> dict:
    return tomllib.loads(RAILWAY.read_text())


# --- the parsers themselves --------------------------------------------------------------------


def test_dockerfile_parser_joins_continuations_and_splits_stages():
    stages = parse_dockerfile(
        "# syntax=docker/dockerfile:1\nFROM a AS b\nRUN x \\\n  # note\n  && y\n"
        "FROM c\nENV A=1 \\\n    B=2\nCMD [\"p\", \"q\"]\n")
    assert [(s.image, s.name) for s in stages] == [("a", "b"), ("c", None)]
    assert stages[0].all("RUN")[0].args == "x && y"
    assert env_assignments(stages[1].all("ENV")[0].args) == {"A": "1", "B": "2"}
    assert command_words(stages[1].all("CMD")[0].args) == ["p", "q"]


def test_setting_env_names_are_collected():
    names = setting_env_names()
    assert {"WACDC_SOURCE_URL", "DATABASE_URL", "WACDC_METRICS_PORT", "PORT"} <= names
    assert "source_url" not in names


# --- Dockerfile --------------------------------------------------------------------------------


def test_final_stage_is_python_311_slim(stages):
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-[a-z]+)?", stages[-1].image), stages[-1].image
    for stage in stages:
        assert ":" in stage.image and not stage.image.endswith(":latest"), stage.image


def test_the_build_stage_compiles_the_c_extension_and_checks_it(stages):
    # setuptools builds src/wacdc/source/_jsonbinary.c as optional: without a compiler
    # the image would silently print MySQL's JSON in pure Python, several times slower.
    build = stages[0]
    runs = " ".join(i.args for i in build.all("RUN"))
    assert re.search(r"apt-get install[^;&]*\bgcc\b", runs), "no C compiler in the build stage"
    assert "jsonbinary.COMPILED" in runs, "the build does not check the extension was built"
    assert not any("gcc" in i.args for i in stages[-1].all("RUN")), "gcc in the runtime image"


def test_runs_as_non_root_uid_10001(stages):
    final = stages[-1]
    users = final.all("USER")
    assert users, "the final stage sets no USER (it would run as root)"
    user = users[-1].args.split(":")[0]
    assert user not in {"root", "0"}
    if user != "10001":  # a name: the final stage must create it with uid 10001
        runs = " ".join(i.args for i in final.all("RUN"))
        assert re.search(rf"(useradd|adduser)\b[^;&]*--uid[ =]10001\b[^;&]*\b{user}\b", runs)


def test_starts_wacdc_run(stages):
    final = stages[-1]
    entrypoint = final.all("ENTRYPOINT")
    cmd = final.all("CMD")
    words = (command_words(entrypoint[-1].args) if entrypoint else []) + (
        command_words(cmd[-1].args) if cmd else [])
    assert words == ["wacdc", "run"]
    for ins in entrypoint[-1:] + cmd[-1:]:
        assert ins.args.startswith("["), "use the exec form so wacdc gets SIGTERM as PID 1"


def test_healthcheck_calls_healthz_on_the_metrics_port(stages):
    checks = stages[-1].all("HEALTHCHECK")
    assert checks, "no HEALTHCHECK"
    args = checks[-1].args
    assert HEALTH_PATH in args
    assert f'"{HEALTH_PATH}"' in HEALTH_SRC.read_text()  # the daemon serves that path
    assert "urllib" in args and "curl" not in args and "wget" not in args
    port_vars = set(re.findall(r"\$\{([A-Z_]+)", args))
    assert {"WACDC_METRICS_PORT", "PORT"} <= port_vars
    assert port_vars <= setting_env_names()
    assert f":-{DEFAULT_PORT}}}" in args


def test_exposes_the_default_metrics_port(stages):
    exposed = {int(p.split("/")[0]) for i in stages[-1].all("EXPOSE") for p in i.args.split()}
    assert DEFAULT_PORT == 9108
    assert DEFAULT_PORT in exposed


def test_env(stages):
    env: dict[str, str] = {}
    for stage in stages:
        for ins in stage.all("ENV"):
            env.update(env_assignments(ins.args))
    unknown = {n for n in env if n.startswith("WACDC_")} - setting_env_names()
    assert not unknown, f"Dockerfile sets variables wacdc does not read: {sorted(unknown)}"
    final_env: dict[str, str] = {}
    for ins in stages[-1].all("ENV"):
        final_env.update(env_assignments(ins.args))
    assert final_env.get("WACDC_LOG_FORMAT") == "json"
    assert final_env.get("PYTHONUNBUFFERED") == "1"


def test_locked_dependencies_are_a_layer_before_the_source(stages):
    builders = [s for s in stages
                if any("requirements.lock" in i.args for i in s.all("RUN"))]
    assert len(builders) == 1, "exactly one stage installs requirements.lock"
    ins = builders[0].instructions
    lock_copy = next(n for n, i in enumerate(ins)
                     if is_from_context(i) and "requirements.lock" in copy_sources(i))
    lock_install = next(n for n, i in enumerate(ins)
                        if i.keyword == "RUN" and "-r requirements.lock" in i.args)
    assert "--require-hashes" in ins[lock_install].args
    assert "--no-deps" in ins[lock_install].args
    source_copy = next(n for n, i in enumerate(ins) if is_from_context(i) and any(
        s.rstrip("/").split("/")[0] in {"src", "."} for s in copy_sources(i)))
    package_install = next(n for n, i in enumerate(ins) if i.keyword == "RUN" and re.search(
        r"pip install\b.*--no-deps\b.*\s\.(\s|$)", i.args))
    assert lock_copy < lock_install < source_copy < package_install
    assert "config" in {PurePosixPath(s).parts[0] for i in ins if is_from_context(i)
                        for s in copy_sources(i)}, "config/ must be in the build (data-files)"
    if builders[0] is not stages[-1]:
        assert any(f"--from={builders[0].name}" in i.args for i in stages[-1].all("COPY"))


def test_copied_files_exist_and_are_not_dockerignored(stages):
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines()
                if p.strip() and not p.strip().startswith(("#", "!"))]
    for required in (".git", ".venv", "tests", "bench/results"):
        assert required in patterns or required.split("/")[0] in patterns, required
    assert any("__pycache__" in p for p in patterns)
    for stage in stages:
        for ins in stage.instructions:
            if not is_from_context(ins):
                continue
            for source in copy_sources(ins):
                path = source.rstrip("/")
                assert (ROOT / path).exists(), f"COPY {source}: no such file"
                for pattern in patterns:
                    assert not fnmatch.fnmatch(path, pattern.rstrip("/")), (source, pattern)


def test_config_dir_reaches_the_install():
    """config_dir() finds sys.prefix/share/wacdc/config: pyproject must install it there."""
    pyproject = tomllib.loads(PYPROJECT.read_text())
    data_files = pyproject["tool"]["setuptools"]["data-files"]
    installed = {f"{target}/{Path(f).name}" for target, files in data_files.items()
                 for f in files}
    shipped = {f"share/wacdc/{p.relative_to(ROOT).as_posix()}"
               for p in (ROOT / "config").rglob("*") if p.is_file()}
    assert shipped <= installed, f"not installed: {sorted(shipped - installed)}"
    profile_src = (ROOT / "src" / "wacdc" / "schema" / "profile.py").read_text()
    assert '"share" / "wacdc" / "config"' in profile_src


# --- railway.toml ------------------------------------------------------------------------------


def test_railway_builds_the_dockerfile(railway):
    build = railway["build"]
    assert build["builder"] == "DOCKERFILE"
    assert (ROOT / build["dockerfilePath"]).resolve() == DOCKERFILE


def test_railway_deploy(railway):
    deploy = railway["deploy"]
    assert shlex.split(deploy["startCommand"]) == ["wacdc", "run"]
    assert deploy["healthcheckPath"] == HEALTH_PATH
    assert isinstance(deploy["healthcheckTimeout"], int) and deploy["healthcheckTimeout"] >= 60
    assert deploy["restartPolicyType"] == "ON_FAILURE"
    assert deploy["restartPolicyMaxRetries"] == 10
    for key in ("drainingSeconds", "overlapSeconds"):  # Railway rejects strings here
        assert isinstance(deploy.get(key, 0), int)
    assert deploy.get("numReplicas", 1) == 1


def test_railway_documents_real_variables():
    text = RAILWAY.read_text()
    named = set(re.findall(r"\b(?:WACDC|WHATSAPP)_[A-Z0-9_]*[A-Z0-9]\b", text))
    assert {"WACDC_SOURCE_URL", "WACDC_TARGET_URL", "WACDC_ADMIN_TOKEN"} <= named
    assert not named - setting_env_names(), sorted(named - setting_env_names())
    assert "DATABASE_URL" in text and "PORT" in text


# --- docker-compose.yml ------------------------------------------------------------------------


def test_compose_services(compose):
    assert {"mysql", "postgres", "wacdc", "prometheus", "grafana"} <= set(compose["services"])
    for service in compose["services"].values():
        image = service.get("image")
        if image:
            assert ":" in image and not image.endswith(":latest"), image


def test_compose_wacdc_env_names_are_settings(compose):
    env = compose_env(compose["services"]["wacdc"])
    unknown = set(env) - setting_env_names()
    assert not unknown, f"wacdc does not read {sorted(unknown)}"


def test_compose_wacdc_urls_point_at_the_services(compose):
    services = compose["services"]
    env = compose_env(services["wacdc"])
    source = parse_url(env.get("WACDC_SOURCE_URL") or env["DATABASE_URL"], "mysql")
    target = parse_url(env.get("WACDC_TARGET_URL") or env["WHATSAPP_DATABASE_URL"], "postgresql")
    mysql_env = compose_env(services["mysql"])
    pg_env = compose_env(services["postgres"])
    assert (source.host, source.port) == ("mysql", 3306)
    assert source.password == mysql_env["MYSQL_ROOT_PASSWORD"]
    assert source.database == mysql_env["MYSQL_DATABASE"] == "railway"
    assert (target.host, target.port) == ("postgres", 5432)
    assert target.password == pg_env["POSTGRES_PASSWORD"]
    assert env.get("WACDC_ADMIN_TOKEN")


def test_compose_wacdc_build_and_dependencies(compose):
    services = compose["services"]
    wacdc = services["wacdc"]
    build = wacdc["build"]
    context = (DEPLOY / (build if isinstance(build, str) else build["context"])).resolve()
    assert context == ROOT
    assert (context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict)
                       else "Dockerfile")).resolve() == DOCKERFILE
    for name in ("mysql", "postgres"):
        assert wacdc["depends_on"][name]["condition"] == "service_healthy"
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_compose_wacdc_publishes_its_metrics_port(compose):
    wacdc = compose["services"]["wacdc"]
    env = compose_env(wacdc)
    port = int(env.get("WACDC_METRICS_PORT") or env.get("PORT") or DEFAULT_PORT)
    assert port == 9108
    assert port in published_container_ports(wacdc)


def test_compose_mysql_binlog_flags(compose):
    mysql = compose["services"]["mysql"]
    assert mysql["image"].startswith("mysql:9")  # what Railway runs (mysql:latest)
    options = mysql_options(mysql["command"])
    for name, value in MYSQL_FLAGS.items():
        assert name in options, f"mysql needs --{name}"
        if value is not None:
            assert (options[name] or "").upper() == value, f"--{name}={value}"
    assert int(options["server-id"] or 0) > 0
    for host, _ in compose_mounts(mysql):
        assert (DEPLOY / host).exists(), host


def test_compose_prometheus_mounts(compose):
    mounts = compose_mounts(compose["services"]["prometheus"])
    for host, _ in mounts:
        assert (DEPLOY / host).exists(), f"prometheus mounts missing {host}"
    by_host = {(DEPLOY / h).resolve(): PurePosixPath(c) for h, c in mounts}
    config_in_container = by_host[(DEPLOY / "prometheus" / "prometheus.yml").resolve()]
    assert config_in_container == PurePosixPath("/etc/prometheus/prometheus.yml")  # the default
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    container_files = set(by_host.values())
    for rule_file in config["rule_files"]:
        assert config_in_container.parent / rule_file in container_files, rule_file
    targets = {t for job in config["scrape_configs"] if job["job_name"] == "wacdc"
               for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"wacdc:{DEFAULT_PORT}"}
    assert "wacdc" in compose["services"]


def test_compose_grafana_mounts(compose):
    mounts = compose_mounts(compose["services"]["grafana"])
    for host, _ in mounts:
        assert (DEPLOY / host).exists(), f"grafana mounts missing {host}"
    by_host = {(DEPLOY / h).resolve(): PurePosixPath(c) for h, c in mounts}
    assert by_host[(DEPLOY / "grafana" / "provisioning").resolve()] == PurePosixPath(
        "/etc/grafana/provisioning")
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "wacdc.yml").read_text())
    dashboards_dir = PurePosixPath(provider["providers"][0]["options"]["path"])
    assert by_host[(DEPLOY / "grafana" / "wacdc.json").resolve()].parent == dashboards_dir
    assert "3000" in {str(p).split(":")[-1] for p in compose["services"]["grafana"]["ports"]}


# --- requirements.lock -------------------------------------------------------------------------


def test_lock_pins_every_runtime_dependency_with_hashes():
    text = LOCK.read_text()
    assert "Python 3.11" in text
    assert "file:" not in text and "-e " not in text, "the lock must not point at local files"
    pins = lock_pins(text)
    for name, (version, hashes) in pins.items():
        assert hashes, f"{name}=={version} has no --hash"
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    for dependency in dependencies:
        requirement = Requirement(dependency)
        name = normalize_name(requirement.name)
        assert name in pins, f"requirements.lock does not pin {name}"
        version = pins[name][0]
        assert requirement.specifier.contains(version), f"{name}=={version} vs {dependency}"
    assert "psycopg-binary" in pins  # psycopg[binary]
    assert "cryptography" in pins  # PyMySQL[rsa]
