#!/usr/bin/env bash
# Generates short-lived TEST-ONLY certificates with OpenSSL for the TLS test services and the
# TLS integration tests. Never use these anywhere else: the keys are unencrypted (except the
# broker's keystore copy, encrypted with a password stored next to it) and live in a state folder.
#
# Usage: scripts/gen-test-certs.sh DIR
#   DIR/ca.pem, ca.key                 test CA
#   DIR/server.pem, server.key         server certificate for 127.0.0.1 and localhost (SAN)
#   DIR/server-chain.pem               server certificate followed by the CA
#   DIR/server-keystore.pem            encrypted PKCS#8 key + chain (Kafka's PEM keystore)
#   DIR/server-keystore.password       its key password
#   DIR/client.pem, client.key         client certificate (CN=telemetryd-test-client)
#   DIR/client-combined.pem            client certificate + key in one file (libmongoc)
#   DIR/wrong-ca.pem, wrong-ca.key     an unrelated CA, for wrong-CA tests
#   DIR/wrong-client.pem, .key         a client certificate signed by the unrelated CA
#
# Idempotent: existing files are kept while the server certificate is valid for another day;
# otherwise everything is generated again. Certificates are valid for 7 days.
set -euo pipefail

if [[ $# -ne 1 || $1 == -h || $1 == --help ]]; then
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    [[ $# -eq 1 ]] && exit 0
    exit 2
fi
command -v openssl >/dev/null 2>&1 || {
    echo "gen-test-certs: openssl not found" >&2
    exit 1
}

DIR=$1
DAYS=7
FILES=(ca.pem ca.key server.pem server.key server-chain.pem server-keystore.pem
    server-keystore.password client.pem client.key client-combined.pem wrong-ca.pem wrong-ca.key
    wrong-client.pem wrong-client.key)

all_present() {
    local f
    for f in "${FILES[@]}"; do [[ -s "$DIR/$f" ]] || return 1; done
    openssl x509 -in "$DIR/server.pem" -noout -checkend 86400 >/dev/null 2>&1
}

mkdir -p "$DIR"
chmod 700 "$DIR"
if all_present; then
    echo "gen-test-certs: certificates in $DIR are current"
    exit 0
fi

TMP="$(mktemp -d "$DIR/.gen.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
umask 077

new_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

# $1 name, $2 subject
new_ca() {
    new_key "$TMP/$1.key"
    openssl req -x509 -new -key "$TMP/$1.key" -sha256 -days "$DAYS" -subj "$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$TMP/$1.pem"
}

# $1 name, $2 subject, $3 signing CA name, $4 extension lines
new_leaf() {
    new_key "$TMP/$1.key"
    openssl req -new -key "$TMP/$1.key" -subj "$2" -out "$TMP/$1.csr"
    printf '%s\n' "$4" >"$TMP/$1.ext"
    openssl x509 -req -in "$TMP/$1.csr" -CA "$TMP/$3.pem" -CAkey "$TMP/$3.key" \
        -CAcreateserial -sha256 -days "$DAYS" -extfile "$TMP/$1.ext" -out "$TMP/$1.pem" 2>/dev/null
    rm -f "$TMP/$1.csr" "$TMP/$1.ext"
}

new_ca ca "/CN=telemetryd test CA"
new_ca wrong-ca "/CN=telemetryd unrelated test CA"
new_leaf server "/CN=localhost" ca "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
new_leaf client "/CN=telemetryd-test-client" ca "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
new_leaf wrong-client "/CN=telemetryd-wrong-client" wrong-ca "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

cat "$TMP/server.pem" "$TMP/ca.pem" >"$TMP/server-chain.pem"
cat "$TMP/client.pem" "$TMP/client.key" >"$TMP/client-combined.pem"
# Kafka reads a PEM keystore file only with an encrypted PKCS#8 key and ssl.key.password, and
# its JDK decrypts PBES1 (PKCS#12 PBE with 3DES), not PBES2.
openssl rand -hex 16 >"$TMP/server-keystore.password"
openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES -in "$TMP/server.key" \
    -passout "file:$TMP/server-keystore.password" -out "$TMP/server-keystore.key"
cat "$TMP/server-keystore.key" "$TMP/server-chain.pem" >"$TMP/server-keystore.pem"
rm -f "$TMP/server-keystore.key" "$TMP"/*.srl

chmod 600 "$TMP"/*
# Certificates are public; group/other read lets services running as another user load them.
chmod 644 "$TMP"/*.pem
chmod 600 "$TMP"/*.key "$TMP/server-keystore.pem" "$TMP/server-keystore.password" \
    "$TMP/client-combined.pem"
for f in "${FILES[@]}"; do mv -f "$TMP/$f" "$DIR/$f"; done
echo "gen-test-certs: generated test certificates in $DIR (valid $DAYS days)"
