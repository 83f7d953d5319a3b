"""A Python grpcio client against a real `discreet serve`: the gateway works for callers
that are not written in Rust.

The gateway runs from a byte-for-byte copy of the shipped `config/discreet.yaml` and
`config/policy.yaml` (only the `listen:` line is changed, to a free port) with a fresh
development keyring. The client stubs are generated from `proto/` at test time, and the
tokens are minted by the CLI's development commands, as a caller would get them.

The binary is taken from $DISCREET_BIN (default: <repo>/target/debug/discreet); build it
with `cargo build -p discreet-cli`. tests/python/run.sh does all of it.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
DISCREET_BIN = Path(os.environ.get("DISCREET_BIN", REPO / "target" / "debug" / "discreet"))

LISTEN_LINE = re.compile(r"^listen:[ \t]*\S+[ \t]*$", re.MULTILINE)
STARTUP_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 10.0

SUBJECT = "persona-eu"
PERSONA_EU_BIRTH_DATE = dt.date(1984, 9, 3)  # crates/profile-store/src/dataset.rs
PURPOSE = "personalize"
ALLOWED_CALLER = "shop/recommender"
OTHER_CALLER = "marketing/mailer"  # allowed marketing.communications.email, not personalize


# ---------------------------------------------------------------------------------------
# Helpers


def discreet(*args: str, cwd: Path | None = None) -> str:
    """Runs the CLI and returns its stdout; fails the test with its stderr otherwise."""
    if not DISCREET_BIN.is_file():
        pytest.fail(
            f"discreet binary not found at {DISCREET_BIN}: run `cargo build -p discreet-cli`"
            " or set DISCREET_BIN"
        )
    proc = subprocess.run(
        [str(DISCREET_BIN), *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"`discreet {' '.join(args)}` exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc.stdout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def generate_stubs(out: Path):
    """Generates the Python stubs for profile.v1 into `out` and imports them."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "-I",
        "proto",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        "proto/profile/v1/profile.proto",
        "proto/discreet/privacy/v1/annotations.proto",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"protoc failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    # Regular packages, not namespace ones: the generated code imports `profile.v1`, and
    # the standard library has a `profile` module that would otherwise win.
    for pkg in ("profile", "profile/v1", "discreet", "discreet/privacy", "discreet/privacy/v1"):
        (out / pkg / "__init__.py").touch()
    sys.path.insert(0, str(out))
    for name in list(sys.modules):
        if name == "profile" or name.startswith(("profile.", "discreet.")) or name == "discreet":
            del sys.modules[name]
    importlib.invalidate_caches()
    pb2 = importlib.import_module("profile.v1.profile_pb2")
    pb2_grpc = importlib.import_module("profile.v1.profile_pb2_grpc")
    assert Path(pb2.__file__).resolve().is_relative_to(out.resolve()), pb2.__file__
    return pb2, pb2_grpc


def log_tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()  # SIGTERM: the gateway drains and exits
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class Gateway:
    address: str
    channel: grpc.Channel
    pb2: object
    stub: object
    tokens: dict[str, str]
    log: Path

    def metadata(self, *, caller: str | None = ALLOWED_CALLER, purpose: str | None = PURPOSE,
                 consent: bool = True) -> list[tuple[str, str]]:
        md = []
        if caller is not None:
            md.append(("authorization", f"Bearer {self.tokens['caller:' + caller]}"))
        if purpose is not None:
            md.append(("x-discreet-purpose", purpose))
        if consent:
            md.append(("x-discreet-consent", self.tokens["consent:" + SUBJECT]))
        return md

    def get_profile_raw(self, metadata):
        """GetProfile through a generic stub that records every message it receives, so a
        refused call can be shown to have carried no message at all."""
        received: list[bytes] = []

        def deserialize(data: bytes):
            received.append(data)
            return self.pb2.Profile.FromString(data)

        call = self.channel.unary_unary(
            "/profile.v1.ProfileService/GetProfile",
            request_serializer=self.pb2.GetProfileRequest.SerializeToString,
            response_deserializer=deserialize,
        )
        request = self.pb2.GetProfileRequest(subject_id=SUBJECT)
        with pytest.raises(grpc.RpcError) as err:
            call(request, metadata=metadata, timeout=CALL_TIMEOUT_S)
        return err.value, received


# ---------------------------------------------------------------------------------------
# The gateway, once per session


@pytest.fixture(scope="session")
def gateway(tmp_path_factory) -> Gateway:
    tmp = tmp_path_factory.mktemp("discreet")

    # Client stubs, generated from the repository's protos.
    pb2, pb2_grpc = generate_stubs(tmp / "stubs")

    # The shipped configuration, copied byte for byte; only the listen line changes.
    shutil.copyfile(REPO / "config" / "policy.yaml", tmp / "policy.yaml")
    shipped = (REPO / "config" / "discreet.yaml").read_bytes().decode("utf-8")
    assert len(LISTEN_LINE.findall(shipped)) == 1, "config/discreet.yaml: expected one listen line"
    port = free_port()
    config = LISTEN_LINE.sub(f"listen: 127.0.0.1:{port}", shipped)
    (tmp / "discreet.yaml").write_bytes(config.encode("utf-8"))

    # A fresh development keyring where the config expects it, and tokens from it.
    discreet("keys", "dev", "--dir", str(tmp / "keys"))
    for name in ("consent-jwks.json", "consent-private.pem", "caller-jwks.json",
                 "caller-private.pem", "revocations.json", "pseudonym.key"):
        assert (tmp / "keys" / name).is_file(), f"keys dev did not write {name}"
    keys = str(tmp / "keys")
    tokens = {
        "consent:" + SUBJECT: discreet(
            "token", "dev-consent", "--keys", keys, "--sub", SUBJECT, "--purpose", PURPOSE,
            "--ttl", "1h",
        ).strip(),
    }
    for caller in (ALLOWED_CALLER, OTHER_CALLER):
        tokens["caller:" + caller] = discreet(
            "token", "dev-caller", "--keys", keys, "--caller", caller, "--ttl", "1h"
        ).strip()
    for key, token in tokens.items():
        assert token.count(".") == 2 and "\n" not in token, f"{key}: not a compact JWT: {token!r}"

    # The gateway, started from an unrelated working directory: the config's relative
    # paths must resolve against the config file's own directory.
    workdir = tmp / "cwd"
    workdir.mkdir()
    log = tmp / "discreet-serve.log"
    address = f"127.0.0.1:{port}"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [str(DISCREET_BIN), "serve", "--config", str(tmp / "discreet.yaml")],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    channel = None
    try:
        channel = grpc.insecure_channel(address)
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        last = "no answer yet"
        while True:
            if proc.poll() is not None:
                pytest.fail(f"discreet serve exited {proc.returncode} before serving:\n{log_tail(log)}")
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
                last = f"health status {reply.status}"
            except grpc.RpcError as e:
                last = f"{e.code()}: {e.details()}"
            if time.monotonic() > deadline:
                pytest.fail(
                    f"discreet serve not healthy on {address} after {STARTUP_TIMEOUT_S:.0f}s"
                    f" ({last}):\n{log_tail(log)}"
                )
            time.sleep(0.2)

        yield Gateway(
            address=address,
            channel=channel,
            pb2=pb2,
            stub=pb2_grpc.ProfileServiceStub(channel),
            tokens=tokens,
            log=log,
        )
    finally:
        if channel is not None:
            channel.close()
        stop(proc)


# ---------------------------------------------------------------------------------------
# Tests


def test_health_answers_locally(gateway):
    reply = health_pb2_grpc.HealthStub(gateway.channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=CALL_TIMEOUT_S
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_personalize_read_is_minimised(gateway):
    profile, call = gateway.stub.GetProfile.with_call(
        gateway.pb2.GetProfileRequest(subject_id=SUBJECT),
        metadata=gateway.metadata(),
        timeout=CALL_TIMEOUT_S,
    )
    assert call.code() == grpc.StatusCode.OK

    # The subject id comes back as a per-purpose pseudonym.
    assert profile.subject_id != SUBJECT
    assert re.fullmatch(r"[0-9a-f]{32}", profile.subject_id), profile.subject_id

    # Contact details (email, phone) are not released for personalisation.
    assert not profile.HasField("contact"), profile.contact

    # The birth date is generalised to an age band that holds the subject's real age.
    band = profile.demographics.birth_date
    m = re.fullmatch(r"(\d{1,3})-(\d{1,3})", band)
    assert m, f"birth_date not an age band: {band!r}"
    today = dt.date.today()
    born = PERSONA_EU_BIRTH_DATE
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    assert int(m.group(1)) <= age <= int(m.group(2)), (band, age)

    # A few more of the shipped policy's decisions for this purpose.
    assert profile.jurisdiction == "FR"  # user.location.coarse: keep
    assert profile.national_id == ""  # user.government_id: no rule, dropped
    assert profile.ip_address == "" and not profile.device_ids  # user.device: dropped
    assert profile.inferences.pregnancy_likelihood == 0.0  # special category: never

    # The caller is told what was withheld, and under which decision.
    trailers = {}
    for key, value in call.trailing_metadata() or ():
        trailers.setdefault(key, value)
    assert trailers.get("x-discreet-decision-id"), trailers
    withheld = [p.strip() for p in trailers.get("x-discreet-withheld-fields", "").split(",")]
    assert any(p == "contact" or p.startswith("contact.") for p in withheld), trailers


def test_without_consent_is_refused_with_no_message(gateway):
    err, received = gateway.get_profile_raw(gateway.metadata(consent=False))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED, (err.code(), err.details())
    assert received == []


def test_caller_not_allowed_the_purpose_is_refused(gateway):
    err, received = gateway.get_profile_raw(gateway.metadata(caller=OTHER_CALLER))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED, (err.code(), err.details())
    assert received == []


def test_without_authorization_is_unauthenticated(gateway):
    err, received = gateway.get_profile_raw(gateway.metadata(caller=None))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED, (err.code(), err.details())
    assert received == []


def test_method_not_configured_is_unimplemented(gateway):
    received: list[bytes] = []

    def deserialize(data: bytes) -> bytes:
        received.append(data)
        return data

    delete_everything = gateway.channel.unary_unary(
        "/profile.v1.ProfileService/DeleteEverything",
        request_serializer=lambda b: b,
        response_deserializer=deserialize,
    )
    with pytest.raises(grpc.RpcError) as err:
        delete_everything(b"", metadata=gateway.metadata(), timeout=CALL_TIMEOUT_S)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, (err.value.code(), err.value.details())
    assert received == []
