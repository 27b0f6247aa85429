"""Signed C2PA manifests on what kinema generates (c2pa-python), offline.

Each output gets a manifest whose `c2pa.actions` holds one `c2pa.created` action with the IPTC
digital source type `trainedAlgorithmicMedia` and kinema as the software agent, and an
`org.kinema.generation` assertion: kinema's version, the model (name and weights hash), mode,
seed, steps, guidance, and the prompt only when the user allows it. Given images and videos
(image-to-video, extend, edit) are the action's ingredients.

Signing needs a certificate chain. Without one given (`--sign-cert/--sign-key`, or
KINEMA_SIGN_CERT / KINEMA_SIGN_KEY), kinema makes its own on first use: a local root CA and an
ES256 signing certificate issued by it (the C2PA SDK refuses a self-signed end-entity
certificate; the leaf carries digitalSignature, the emailProtection extended key usage the SDK
accepts by default, and subject / authority key identifiers), kept in the user's config folder
(KINEMA_CONFIG, else $XDG_CONFIG_HOME/kinema or ~/.config/kinema) readable by the user alone.
Reading with that CA as a trust anchor reports the signature trusted.

Formats: mp4 / mov (a BMFF hash), png, gif, jpeg, webp (a data hash). WebM is not supported by
the C2PA SDK: a .webm output carries the watermark only (said in `kinema detect` and --help).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from ..atomic import atomic_path
from ..errors import InputError, KinemaError

GENERATED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
MIME = {".mp4": "video/mp4", ".mov": "video/quicktime", ".m4v": "video/mp4", ".png": "image/png",
        ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
LABEL = "org.kinema.generation"


class ManifestError(KinemaError):
    """A manifest could not be made or read (a bad certificate or key, an unsupported format)."""


def supported(path) -> bool:
    return Path(path).suffix.lower() in MIME


def config_dir() -> Path:
    if os.environ.get("KINEMA_CONFIG"):
        return Path(os.environ["KINEMA_CONFIG"]).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "kinema"


# ------------------------------------------------------------------ the local signing identity

def local_identity(folder: Path | None = None) -> dict[str, Path]:
    """kinema's own CA and signing certificate, made on first use: {"ca", "chain", "key"} paths."""
    folder = Path(folder) if folder else config_dir() / "signing"
    paths = {"ca": folder / "ca.pem", "chain": folder / "chain.pem", "key": folder / "signer.key"}
    if all(p.is_file() for p in paths.values()):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    ca_pem, chain_pem, key_pem = _make_identity()
    for name, data in (("ca", ca_pem), ("chain", chain_pem), ("key", key_pem)):
        with atomic_path(paths[name]) as tmp:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        os.chmod(paths[name], 0o600)  # (atomic_path gives the umask's mode; the folder is 0700 meanwhile)
    return paths


def _make_identity() -> tuple[bytes, bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kinema (local)"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    usage = dict(content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
                 crl_sign=False, encipher_only=False, decipher_only=False)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(name("kinema local root CA")).issuer_name(name("kinema local root CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True, **{**usage, "crl_sign": True}),
                         critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(name("kinema video generator")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, **usage), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), leaf.public_bytes(pem) + ca.public_bytes(pem), key_pem


def signing_files(cert=None, key=None) -> tuple[Path, Path]:
    """(chain, key): given, from KINEMA_SIGN_CERT / KINEMA_SIGN_KEY, or kinema's local identity."""
    cert = cert or os.environ.get("KINEMA_SIGN_CERT")
    key = key or os.environ.get("KINEMA_SIGN_KEY")
    if bool(cert) != bool(key):
        raise InputError("give both a signing certificate chain and its private key (--sign-cert and --sign-key)")
    if cert:
        for p in (cert, key):
            if not Path(p).is_file():
                raise InputError(f"signing file {p}: no such file")
        return Path(cert), Path(key)
    ident = local_identity()
    return ident["chain"], ident["key"]


# ------------------------------------------------------------------ signing and reading

def _context(trust: list[str] | None = None, thumbnails: bool = False):
    import c2pa
    settings = {"builder": {"thumbnail": {"enabled": thumbnails}}}
    if trust:
        settings["trust"] = {"trust_anchors": "\n".join(trust)}
    return c2pa.Context(settings=c2pa.Settings.from_dict(settings))


def manifest(info: dict, ingredients: list[str] = ()) -> dict:
    """The manifest definition of a generated file with `info` (kinema version, model, mode, ...)."""
    from .. import __version__
    action = {"action": "c2pa.created", "digitalSourceType": GENERATED,
              "softwareAgent": {"name": "kinema", "version": __version__}}
    if ingredients:
        action["parameters"] = {"ingredientIds": [f"input-{i}" for i in range(len(ingredients))]}
    return {"claim_generator_info": [{"name": "kinema", "version": __version__}],
            "title": info.get("title", "kinema output"),
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}},
                           {"label": LABEL, "data": {"kinema": __version__, **info}}]}


def sign(path: str | Path, info: dict, ingredients: list[str | Path] = (), cert=None, key=None) -> bool:
    """Embed a signed manifest in `path` (replaced atomically); False for a format C2PA cannot hold."""
    import c2pa
    path = Path(path)
    if not supported(path):
        return False
    chain, key_path = signing_files(cert, key)
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg=c2pa.C2paSigningAlg.ES256, sign_cert=chain.read_bytes(),
                                                           private_key=key_path.read_bytes(), ta_url=None))
        builder = c2pa.Builder(manifest({"title": path.name, **info},
                                        [str(i) for i in ingredients if i and supported(i)]), context=_context())
        for i, src in enumerate(p for p in ingredients if p and supported(p)):
            with open(src, "rb") as f:
                builder.add_ingredient({"title": Path(src).name, "relationship": "inputTo", "label": f"input-{i}"},
                                       MIME[Path(src).suffix.lower()], f)
        with atomic_path(path) as tmp, open(path, "rb") as src, open(tmp, "w+b") as dst:
            builder.sign(signer, MIME[path.suffix.lower()], src, dst)
    except c2pa.C2paError as e:
        raise ManifestError(f"cannot sign {path.name}: {e}") from e
    return True


def read(path: str | Path, trust: list[str] | None = None) -> dict:
    """What the file's manifest says: {"present", "valid", "trusted", "state", "signer", "generated",
    "assertions", "failures"}; trust: PEM CA certificates to accept (default: kinema's local CA,
    if this machine has one, and KINEMA_TRUST_ANCHORS, a PEM file)."""
    import c2pa
    path = Path(path)
    if not supported(path):
        return {"present": False, "supported": False}
    if trust is None:
        trust = []
        local = config_dir() / "signing" / "ca.pem"
        for p in (local, os.environ.get("KINEMA_TRUST_ANCHORS")):
            if p and Path(p).is_file():
                trust.append(Path(p).read_text())
    try:
        with open(path, "rb") as f:
            reader = c2pa.Reader.try_create(MIME[path.suffix.lower()], f, context=_context(trust))
            if reader is None:
                return {"present": False, "supported": True}
            with reader:
                store = json.loads(reader.json())
                state = reader.get_validation_state()
                results = reader.get_validation_results() or {}
    except c2pa.C2paError as e:
        return {"present": True, "valid": False, "trusted": False, "state": "Unreadable", "failures": [str(e)]}
    active = store.get("manifests", {}).get(store.get("active_manifest"), {})
    codes = results.get("activeManifest") or {}
    failures = [c["code"] for c in codes.get("failure", [])]
    assertions = {a["label"]: a.get("data") for a in active.get("assertions", [])}
    actions = (assertions.get("c2pa.actions.v2") or assertions.get("c2pa.actions") or {}).get("actions", [])
    return {"present": True, "supported": True, "state": state, "valid": state in ("Valid", "Trusted"),
            "trusted": state == "Trusted", "signer": (active.get("signature_info") or {}).get("issuer"),
            "generated": any(a.get("digitalSourceType") == GENERATED for a in actions),
            "generation": assertions.get(LABEL), "failures": failures}
