# Sourced by scripts/setup-engines.sh: a test certificate authority and the certificates signed by it
# (the dockerd TLS listener, its client, the auth registry), plus a second, untrusted CA with a client
# certificate for the "bad certificate" tests. Kept under $OCIMAN_PKI; made again only when missing
# or expiring within a day.
#   $OCIMAN_PKI/ca.pem, ca-key.pem                  the test CA
#   $OCIMAN_PKI/dockerd/{ca,cert,key}.pem           dockerd's server side (127.0.0.1, localhost)
#   $OCIMAN_PKI/docker-client/{ca,cert,key}.pem     a DOCKER_CERT_PATH as the docker CLI reads it
#   $OCIMAN_PKI/registry/{cert,key}.pem             the auth registry's server certificate
#   $OCIMAN_PKI/untrusted-client/{ca,cert,key}.pem  a DOCKER_CERT_PATH whose CA dockerd does not trust
#   $OCIMAN_PKI/wrong-name/{cert,key}.pem           a server certificate of the test CA for another
#                                                   name (elsewhere.invalid): hostname verification
OCIMAN_PKI=/etc/ociman-test/pki

pki_fresh() {   # pki_fresh CERT -> 0 when it exists and is valid for another day
    [ -s "$1" ] && openssl x509 -in "$1" -noout -checkend 86400 >/dev/null 2>&1
}

pki_make_ca() {   # pki_make_ca DIR NAME
    pki_fresh "$1/ca.pem" && return 0
    mkdir -p "$1"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=$2" -keyout "$1/ca-key.pem" -out "$1/ca.pem" 2>/dev/null
    chmod 600 "$1/ca-key.pem"
    PKI_CHANGED=1
}

pki_sign() {   # pki_sign CA_DIR OUT_DIR CN EXTENSIONS
    pki_fresh "$2/cert.pem" && [ "$PKI_CHANGED" = 0 ] && return 0
    mkdir -p "$2"
    local ext
    ext=$(mktemp)
    printf '%s\n' "$4" >"$ext"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$3" \
        -keyout "$2/key.pem" -out "$2/req.csr" 2>/dev/null
    openssl x509 -req -in "$2/req.csr" -CA "$1/ca.pem" -CAkey "$1/ca-key.pem" -CAcreateserial \
        -days 825 -extfile "$ext" -out "$2/cert.pem" 2>/dev/null
    rm -f "$2/req.csr" "$ext"
    cp "$1/ca.pem" "$2/ca.pem"
    chmod 600 "$2/key.pem"
}

ensure_test_pki() {
    PKI_CHANGED=0
    mkdir -p "$OCIMAN_PKI" && chmod 755 /etc/ociman-test "$OCIMAN_PKI"
    pki_make_ca "$OCIMAN_PKI" "ociman test CA"
    local server='basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost'
    local client='basicConstraints=CA:FALSE
keyUsage=digitalSignature
extendedKeyUsage=clientAuth'
    pki_sign "$OCIMAN_PKI" "$OCIMAN_PKI/dockerd" "dockerd" "$server"
    pki_sign "$OCIMAN_PKI" "$OCIMAN_PKI/docker-client" "ociman test client" "$client"
    pki_sign "$OCIMAN_PKI" "$OCIMAN_PKI/registry" "registry" "$server"
    pki_sign "$OCIMAN_PKI" "$OCIMAN_PKI/wrong-name" "elsewhere.invalid" "${server%%subjectAltName=*}subjectAltName=DNS:elsewhere.invalid"
    pki_make_ca "$OCIMAN_PKI/untrusted" "ociman untrusted CA"
    pki_sign "$OCIMAN_PKI/untrusted" "$OCIMAN_PKI/untrusted-client" "ociman untrusted client" "$client"
    [ "$PKI_CHANGED" = 0 ] || ACTIONS+=("made the test CA and certificates in $OCIMAN_PKI")
}

ensure_pkgs openssl
ensure_test_pki
