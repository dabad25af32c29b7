# shellcheck shell=bash
# Test TLS material for the throwaway servers (scripts/broker, scripts/postgres). Source it after
# common.sh; it does not change shell options.
#
# make_tls DIR: unless already there, DIR/{ca,server,client,rogue-ca,rogue-client}.{pem,key}:
#   ca            a self-signed test CA
#   server        signed by ca, for localhost and 127.0.0.1 (serverAuth)
#   client        signed by ca (clientAuth)
#   rogue-ca      an unrelated CA that signed nothing a server uses: trusting it instead of ca.pem
#                 must make a client refuse the server
#   rogue-client  a client certificate signed by rogue-ca, which a server verifying against ca.pem
#                 must refuse
# Keys are mode 600, certificates 644.
make_tls() {
    local tls="$1" tmp
    mkdir -p "$tls"
    if [ -s "$tls/ca.pem" ] && [ -s "$tls/server.pem" ] && [ -s "$tls/client.pem" ] && [ -s "$tls/rogue-ca.pem" ]; then
        return 0
    fi
    log_info "generating TLS material in $tls"
    tmp="$tls/.work"
    mkdir -p "$tmp"
    cat >"$tmp/ca.ext" <<'EOF'
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    cat >"$tmp/server.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
# NB: librabbitmq-c 0.11 checks the host name against DNS SAN entries only (then the CN), never
# IP entries: a client on it must connect to "localhost" to pass verification; 127.0.0.1 fails.
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityKeyIdentifier = keyid
EOF
    cat >"$tmp/client.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
EOF
    local ossl=(openssl)
    # self-signed CA: make_ca NAME CN
    make_ca() {
        "${ossl[@]}" req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
            -subj "/O=WarehouseSync test/CN=$2" \
            -keyout "$tls/$1.key" -out "$tls/$1.pem" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>"$tmp/openssl.err" \
            || { cat "$tmp/openssl.err" >&2; die "openssl: could not create CA $1"; }
    }
    # leaf signed by a CA: make_leaf NAME CN CA EXT
    make_leaf() {
        "${ossl[@]}" req -new -newkey rsa:2048 -nodes -sha256 -subj "/O=WarehouseSync test/CN=$2" \
            -keyout "$tls/$1.key" -out "$tmp/$1.csr" >/dev/null 2>"$tmp/openssl.err" \
            && "${ossl[@]}" x509 -req -in "$tmp/$1.csr" -CA "$tls/$3.pem" -CAkey "$tls/$3.key" \
                -CAcreateserial -CAserial "$tmp/$3.srl" -days 3650 -sha256 \
                -extfile "$tmp/$4" -out "$tls/$1.pem" >/dev/null 2>>"$tmp/openssl.err" \
            || { cat "$tmp/openssl.err" >&2; die "openssl: could not create $1"; }
    }
    make_ca ca "WarehouseSync test CA"
    make_leaf server localhost ca server.ext
    make_leaf client whsync-test-client ca client.ext
    # An unrelated CA that signed nothing the broker uses: trusting it instead of ca.pem must
    # make the client refuse the broker; rogue-client.* is a client certificate the broker
    # must refuse (verify_peer against ca.pem).
    make_ca rogue-ca "WarehouseSync rogue CA"
    make_leaf rogue-client whsync-rogue-client rogue-ca client.ext
    rm -rf "$tmp"
    chmod 600 "$tls"/*.key
    chmod 644 "$tls"/*.pem
    openssl verify -CAfile "$tls/ca.pem" "$tls/server.pem" "$tls/client.pem" >/dev/null \
        || die "generated certificates do not verify against ca.pem"
}
