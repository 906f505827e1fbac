package oidcprovider

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// Credentials of the resource servers that server.mjs registers to
// authenticate with a JWT (RFC 7523 §2.2) or a TLS client certificate
// (RFC 8705). Their keys and certificates are made for each test run by
// [TestKeys].
const (
	// SecretJWTClientID authenticates with client_secret_jwt: an HS256
	// assertion made with SecretJWTSecret, which has at least 32 bytes.
	SecretJWTClientID = "resource-server-secret-jwt"
	SecretJWTSecret   = "interop-test-only-client-secret-jwt-0123456789"

	// ES256ClientID, ES384ClientID, RSAClientID and Ed25519ClientID
	// authenticate with private_key_jwt, each with the key of the same name
	// in [Keys]. The RSA client accepts RS256 and PS256.
	ES256ClientID   = "resource-server-es256"
	ES384ClientID   = "resource-server-es384"
	RSAClientID     = "resource-server-rsa"
	Ed25519ClientID = "resource-server-ed25519"

	// TLSClientID authenticates with tls_client_auth: a certificate that
	// chains to [Keys.CA] with the subject TLSClientSubject. Only a provider
	// started with [Options.MTLS] registers it.
	TLSClientID      = "resource-server-mtls"
	TLSClientSubject = "CN=introspection interop client"

	// SelfSignedTLSClientID authenticates with self_signed_tls_client_auth:
	// [Keys.SelfSignedCertificate], registered by its x5c. Only a provider
	// started with [Options.MTLS] registers it.
	SelfSignedTLSClientID = "resource-server-self-signed-mtls"
)

// ClientKey is the private key of a client that server.mjs registers for
// private_key_jwt: the client's jwks hold only its public key, with KeyID
// as kid.
type ClientKey struct {
	// ClientID is the client the key belongs to.
	ClientID string
	// KeyID is the kid of the registered public key.
	KeyID string
	// Key is an *ecdsa.PrivateKey, an *rsa.PrivateKey or an
	// ed25519.PrivateKey.
	Key crypto.Signer
}

// Keys are the keys and certificates of one test run. They are made on
// first use and are only ever used in tests: nothing outside this process
// trusts them.
type Keys struct {
	// ES256 is a P-256 key, ES384 a P-384 key, RSA a 2048-bit key and
	// Ed25519 an Ed25519 key, each registered for the client of the same
	// name.
	ES256, ES384, RSA, Ed25519 ClientKey

	// CA is the test certificate authority: it signs the certificate of
	// the provider's HTTPS listener (for 127.0.0.1) and ClientCertificate.
	// A client that trusts only CA can reach that listener.
	CA *x509.CertPool
	// ClientCertificate, signed by CA with the subject [TLSClientSubject],
	// authenticates [TLSClientID] with tls_client_auth.
	ClientCertificate tls.Certificate
	// SelfSignedCertificate authenticates [SelfSignedTLSClientID] with
	// self_signed_tls_client_auth.
	SelfSignedCertificate tls.Certificate

	caPEM, serverCertPEM, serverKeyPEM []byte
	jwks                               map[string]jwkSet
}

// testKeys makes the keys of this run once.
var testKeys = sync.OnceValues(newKeys)

// TestKeys returns the keys and certificates of this test run, made on the
// first call.
func TestKeys(t testing.TB) *Keys {
	t.Helper()
	k, err := testKeys()
	if err != nil {
		t.Fatalf("making test keys: %v", err)
	}
	return k
}

// newKeys makes the client keys, the test CA and the certificates.
func newKeys() (*Keys, error) {
	k := &Keys{jwks: map[string]jwkSet{}}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	k.ES256 = ClientKey{ClientID: ES256ClientID, KeyID: "interop-es256", Key: p256}
	k.ES384 = ClientKey{ClientID: ES384ClientID, KeyID: "interop-es384", Key: p384}
	k.RSA = ClientKey{ClientID: RSAClientID, KeyID: "interop-rsa", Key: rsaKey}
	k.Ed25519 = ClientKey{ClientID: Ed25519ClientID, KeyID: "interop-ed25519", Key: edKey}
	for _, ck := range []ClientKey{k.ES256, k.ES384, k.RSA, k.Ed25519} {
		jwk, err := PublicJWK(ck.Key.Public())
		if err != nil {
			return nil, err
		}
		jwk["kid"] = ck.KeyID
		k.jwks[ck.ClientID] = jwkSet{Keys: []map[string]any{jwk}}
	}

	// The CA, the HTTPS listener's certificate and the client's.
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "introspection interop test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caCert, caDER, err := certificate(caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	k.CA = x509.NewCertPool()
	k.CA.AddCert(caCert)
	k.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})

	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	_, serverDER, err := certificate(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, caCert, serverKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	k.serverCertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serverDER})
	serverKeyDER, err := x509.MarshalPKCS8PrivateKey(serverKey)
	if err != nil {
		return nil, err
	}
	k.serverKeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: serverKeyDER})

	if k.ClientCertificate, err = ClientCertificate(caCert, caKey, "introspection interop client"); err != nil {
		return nil, err
	}
	if k.SelfSignedCertificate, err = SelfSignedCertificate("introspection interop self-signed client"); err != nil {
		return nil, err
	}
	jwk, err := PublicJWK(k.SelfSignedCertificate.Leaf.PublicKey)
	if err != nil {
		return nil, err
	}
	jwk["x5c"] = []string{base64.StdEncoding.EncodeToString(k.SelfSignedCertificate.Certificate[0])}
	k.jwks[SelfSignedTLSClientID] = jwkSet{Keys: []map[string]any{jwk}}
	return k, nil
}

// ClientCertificate returns a TLS client certificate with the subject
// CN=cn and a new P-256 key, signed by ca with caKey; nil ca makes it
// self-signed.
func ClientCertificate(ca *x509.Certificate, caKey crypto.Signer, cn string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if ca == nil {
		ca, caKey = tmpl, key
	}
	leaf, der, err := certificate(tmpl, ca, key.Public(), caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// SelfSignedCertificate returns a self-signed TLS client certificate with
// the subject CN=cn and a new P-256 key.
func SelfSignedCertificate(cn string) (tls.Certificate, error) {
	return ClientCertificate(nil, nil, cn)
}

// certificate signs tmpl with parent's key signer and returns it parsed and
// in DER.
func certificate(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, []byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, der, nil
}

// jwkSet is an RFC 7517 §5 JWK Set.
type jwkSet struct {
	Keys []map[string]any `json:"keys"`
}

// PublicJWK returns pub, an *ecdsa.PublicKey on P-256 or P-384, an
// *rsa.PublicKey or an ed25519.PublicKey, as an RFC 7517 JWK without kid.
func PublicJWK(pub crypto.PublicKey) (map[string]any, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		point, err := pub.Bytes() // 0x04 || X || Y
		if err != nil {
			return nil, err
		}
		n := (len(point) - 1) / 2
		return map[string]any{
			"kty": "EC", "crv": pub.Curve.Params().Name,
			"x": b64(point[1 : 1+n]), "y": b64(point[1+n:]),
		}, nil
	case *rsa.PublicKey:
		return map[string]any{
			"kty": "RSA", "n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
		}, nil
	case ed25519.PublicKey:
		return map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(pub)}, nil
	}
	return nil, fmt.Errorf("oidcprovider: no JWK for a %T", pub)
}

// SignJWT returns a compact JWS (RFC 7515) of claims with the header alg
// and, if kid is not empty, kid. key is an HMAC secret ([]byte, for HS256)
// or a crypto.Signer: *ecdsa.PrivateKey for ES256 or ES384,
// *rsa.PrivateKey for RS256 or PS256, ed25519.PrivateKey for EdDSA. It is
// written apart from the verifier's own signing code, so that tests can
// make assertions the verifier would never make (a reused jti, another
// aud) and check what the provider accepts.
func SignJWT(key any, alg, kid string, claims map[string]any) (string, error) {
	header := map[string]string{"alg": alg}
	if kid != "" {
		header["kid"] = kid
	}
	h, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	b64 := base64.RawURLEncoding.EncodeToString
	input := b64(h) + "." + b64(c)
	var sig []byte
	switch k := key.(type) {
	case []byte:
		if alg != "HS256" {
			return "", fmt.Errorf("oidcprovider: alg %s with a secret", alg)
		}
		m := hmac.New(sha256.New, k)
		m.Write([]byte(input))
		sig = m.Sum(nil)
	case *ecdsa.PrivateKey:
		hash, size := crypto.SHA256, 32
		if alg == "ES384" {
			hash, size = crypto.SHA384, 48
		} else if alg != "ES256" {
			return "", fmt.Errorf("oidcprovider: alg %s with an EC key", alg)
		}
		r, s, err := ecdsa.Sign(rand.Reader, k, digest(hash, input))
		if err != nil {
			return "", err
		}
		sig = make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
	case *rsa.PrivateKey:
		switch alg {
		case "RS256":
			sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest(crypto.SHA256, input))
		case "PS256":
			sig, err = rsa.SignPSS(rand.Reader, k, crypto.SHA256, digest(crypto.SHA256, input),
				&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		default:
			return "", fmt.Errorf("oidcprovider: alg %s with an RSA key", alg)
		}
		if err != nil {
			return "", err
		}
	case ed25519.PrivateKey:
		if alg != "EdDSA" {
			return "", fmt.Errorf("oidcprovider: alg %s with an Ed25519 key", alg)
		}
		sig = ed25519.Sign(k, []byte(input))
	default:
		return "", errors.New("oidcprovider: unknown key type")
	}
	return input + "." + b64(sig), nil
}

// digest hashes s with h, SHA-256 or SHA-384.
func digest(h crypto.Hash, s string) []byte {
	if h == crypto.SHA384 {
		d := sha512.Sum384([]byte(s))
		return d[:]
	}
	d := sha256.Sum256([]byte(s))
	return d[:]
}
