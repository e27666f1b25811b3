#!/usr/bin/env python3
"""Writes a one-layer OCI image from a root filesystem directory, with no daemon and no registry.

    oci_image.py ROOTFS OUT_DIR --tag NAME:VERSION --config CONFIG.json --annotations ANN.json

ROOTFS becomes one gzip layer: entries sorted, every mtime SOURCE_DATE_EPOCH (default 0), owner
root except the paths given with --owner PATH=UID:GID, so the same tree gives the same digests.
CONFIG.json is the image config's "config" object (User, Entrypoint, Cmd, Env, Labels, ...).

OUT_DIR receives:
  layout/            an OCI image layout (oci-layout, index.json, blobs/sha256/...): `skopeo copy
                     oci:OUT_DIR/layout:TAG ...`, `podman run oci:OUT_DIR/layout`
  image.tar          the same blobs as a Docker archive (manifest.json, no index.json), so that
                     `podman load -i image.tar` and `docker load -i image.tar` both take it and
                     keep the Healthcheck (loaded as OCI, podman drops it: OCI has no such field)
Prints the layer's compressed size and the manifest digest as JSON on stdout.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile


def layer_tar(rootfs, owners, mtime):
    """The uncompressed layer tar of ROOTFS as bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = []
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                paths.append(os.path.join(dirpath, name))
        for path in sorted(paths, key=lambda p: os.path.relpath(p, rootfs)):
            rel = os.path.relpath(path, rootfs)
            info = tar.gettarinfo(path, arcname=rel)
            info.mtime = mtime
            info.uid, info.gid = owners.get(rel, (0, 0))
            info.uname = info.gname = ""
            if info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return "sha256:" + digest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rootfs")
    ap.add_argument("out")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--annotations", required=True)
    ap.add_argument("--owner", action="append", default=[], help="PATH=UID:GID (PATH relative)")
    ap.add_argument("--arch", default="amd64")
    args = ap.parse_args()

    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    owners = {}
    for spec in args.owner:
        path, ids = spec.split("=", 1)
        uid, gid = ids.split(":")
        owners[path.strip("/")] = (int(uid), int(gid))

    layout = os.path.join(args.out, "layout")
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    raw = layer_tar(args.rootfs, owners, mtime)
    gz = io.BytesIO()
    # mtime=0 and no file name in the gzip header keep the compressed bytes reproducible.
    with gzip.GzipFile(fileobj=gz, mode="wb", compresslevel=9, mtime=0, filename="") as g:
        g.write(raw)
    layer = gz.getvalue()
    layer_digest = blob(layout, layer)

    annotations = json.load(open(args.annotations))
    created = annotations.get("org.opencontainers.image.created", "1970-01-01T00:00:00Z")
    image_config = {
        "created": created,
        "architecture": args.arch,
        "os": "linux",
        "config": json.load(open(args.config)),
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
        "history": [{"created": created, "created_by": "scripts/build-image.sh"}],
    }
    if "Healthcheck" in image_config["config"]:
        # Docker's own builds also record it in container_config, the one podman 4.3 reads.
        image_config["container_config"] = {"Healthcheck": image_config["config"]["Healthcheck"]}
    config_bytes = json.dumps(image_config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = blob(layout, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": len(layer)}],
        "annotations": annotations,
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    manifest_digest = blob(layout, manifest_bytes)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": len(manifest_bytes),
                       "platform": {"architecture": args.arch, "os": "linux"},
                       "annotations": {"org.opencontainers.image.ref.name": args.tag.split(":")[-1],
                                       "io.containerd.image.name": args.tag}}],
    }
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f, sort_keys=True, indent=1)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)

    # One tar for `podman load` / `docker load`: Docker's archive format, which keeps the
    # Healthcheck (podman would load an index.json as OCI and drop it).
    docker_manifest = json.dumps([{
        "Config": "blobs/sha256/" + config_digest.split(":")[1],
        "RepoTags": [args.tag],
        "Layers": ["blobs/sha256/" + layer_digest.split(":")[1]],
    }]).encode()
    with tarfile.open(os.path.join(args.out, "image.tar"), "w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            tar.addfile(info, io.BytesIO(data))
        for name in sorted(os.listdir(os.path.join(layout, "blobs", "sha256"))):
            add("blobs/sha256/" + name, open(os.path.join(layout, "blobs", "sha256", name), "rb").read())
        add("manifest.json", docker_manifest)

    json.dump({"layer_compressed_bytes": len(layer), "layer_uncompressed_bytes": len(raw),
               "manifest_digest": manifest_digest, "layer_digest": layer_digest,
               "config_digest": config_digest}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
