package introspection

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// SigningKey is the private key the verifier signs private_key_jwt client
// assertions with (RFC 7523 §2.2). fmt, log/slog and encoding/json never
// show the key: only its algorithm and key id.
type SigningKey struct {
	// Key is an *rsa.PrivateKey (2048 to 8192 bits), an *ecdsa.PrivateKey
	// on P-256 or P-384, or an ed25519.PrivateKey; or any crypto.Signer
	// whose public key is one of those kinds, such as a key held in a
	// hardware module or a cloud KMS.
	Key crypto.Signer
	// KeyID, if set, is sent as the assertion's kid header, so that the
	// server can tell which of the client's keys signed it.
	KeyID string
	// Algorithm is the JWS alg (RFC 7518 §3.1): RS256 or PS256 for RSA,
	// ES256 for P-256, ES384 for P-384, EdDSA for Ed25519 (RFC 8037 §3.1).
	// Empty means RS256, ES256, ES384 or EdDSA by the key.
	Algorithm string
}

// Bounds of a signing key.
const (
	// minSigningKeyRSABits and maxSigningKeyRSABits bound the modulus of an
	// RSA signing key: shorter keys are weak (NIST SP 800-131A), and longer
	// ones make every assertion cost tens of milliseconds.
	minSigningKeyRSABits = 2048
	maxSigningKeyRSABits = 8192
	// maxSigningKeyInput is the most bytes ParseSigningKey reads: enough
	// for a key behind a long certificate chain.
	maxSigningKeyInput = 1 << 20
)

// signingAlg is what a JWS algorithm asks of a signing key.
type signingAlg struct {
	kty   string         // "RSA", "EC" or "OKP"
	curve elliptic.Curve // of an EC key
	hash  crypto.Hash    // 0 for EdDSA, which hashes on its own
	pss   bool           // RSASSA-PSS rather than PKCS #1 v1.5
}

// signingAlgs are the algorithms a SigningKey may use. A name that is not
// here is refused.
var signingAlgs = map[string]signingAlg{
	"RS256": {kty: "RSA", hash: crypto.SHA256},
	"PS256": {kty: "RSA", hash: crypto.SHA256, pss: true},
	"ES256": {kty: "EC", curve: elliptic.P256(), hash: crypto.SHA256},
	"ES384": {kty: "EC", curve: elliptic.P384(), hash: crypto.SHA384},
	"EdDSA": {kty: "OKP"},
}

// isSigningAlg reports whether name is one of signingAlgs.
func isSigningAlg(name string) bool {
	_, ok := signingAlgs[name]
	return ok
}

// signingAlgNames lists signingAlgs for errors.
const signingAlgNames = "RS256, PS256, ES256, ES384 or EdDSA"

// signingKeyInfo describes the public half of a signing key.
type signingKeyInfo struct {
	kty  string // "RSA", "EC" or "OKP"
	name string // "RSA 2048", "P-256" or "Ed25519", for messages
	pub  crypto.PublicKey
	alg  string // the algorithm used when SigningKey.Algorithm is empty
}

// describeSigningKey checks that key is one a SigningKey may hold and returns its
// kind. It calls key.Public only when the key's own fields are complete
// enough for that not to panic; a Public of the caller's (a KMS client's)
// that panics all the same is an error, so that neither NewVerifier nor
// printing the settings panics.
func describeSigningKey(key crypto.Signer) (info signingKeyInfo, err error) {
	defer func() {
		if recover() != nil {
			info, err = signingKeyInfo{}, errors.New("introspection: SigningKey's key panicked in its Public method")
		}
	}()
	switch k := key.(type) {
	case nil:
		return signingKeyInfo{}, errors.New("introspection: SigningKey has no Key")
	case *rsa.PrivateKey:
		if k == nil || k.N == nil || k.D == nil || len(k.Primes) < 2 {
			return signingKeyInfo{}, errors.New("introspection: SigningKey's RSA key is incomplete")
		}
	case *ecdsa.PrivateKey:
		if k == nil {
			return signingKeyInfo{}, errors.New("introspection: SigningKey's ECDSA key is incomplete")
		}
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return signingKeyInfo{}, fmt.Errorf("introspection: SigningKey's Ed25519 key has %d bytes, not %d", len(k), ed25519.PrivateKeySize)
		}
	}
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		if pub == nil || pub.N == nil {
			return signingKeyInfo{}, errors.New("introspection: SigningKey's RSA key is incomplete")
		}
		bits := pub.N.BitLen()
		if bits < minSigningKeyRSABits || bits > maxSigningKeyRSABits {
			return signingKeyInfo{}, fmt.Errorf("introspection: SigningKey's RSA key has %d bits; want %d to %d",
				bits, minSigningKeyRSABits, maxSigningKeyRSABits)
		}
		return signingKeyInfo{kty: "RSA", name: "RSA " + strconv.Itoa(bits), pub: pub, alg: "RS256"}, nil
	case *ecdsa.PublicKey:
		if pub == nil || pub.Curve == nil {
			return signingKeyInfo{}, errors.New("introspection: SigningKey's ECDSA key is incomplete")
		}
		// Curves compare by identity: a curve of another implementation
		// that calls itself P-256 is not P-256.
		switch pub.Curve {
		case elliptic.P256():
			return signingKeyInfo{kty: "EC", name: "P-256", pub: pub, alg: "ES256"}, nil
		case elliptic.P384():
			return signingKeyInfo{kty: "EC", name: "P-384", pub: pub, alg: "ES384"}, nil
		}
		name := "an unknown curve"
		if p := pub.Curve.Params(); p != nil && p.Name != "" {
			name = p.Name
		}
		return signingKeyInfo{}, fmt.Errorf("introspection: SigningKey's ECDSA key is on %s; want P-256 (ES256) or P-384 (ES384)", name)
	case ed25519.PublicKey:
		if len(pub) != ed25519.PublicKeySize {
			return signingKeyInfo{}, errors.New("introspection: SigningKey's Ed25519 key is incomplete")
		}
		return signingKeyInfo{kty: "OKP", name: "Ed25519", pub: pub, alg: "EdDSA"}, nil
	case *ecdh.PublicKey:
		return signingKeyInfo{}, errors.New("introspection: SigningKey's key is an ECDH key (such as X25519), which cannot sign")
	default:
		return signingKeyInfo{}, fmt.Errorf("introspection: SigningKey's key is a %T; want an RSA, ECDSA (P-256, P-384) or Ed25519 key", pub)
	}
}

// checkConsistent checks that a key of a type crypto/rsa, crypto/ecdsa or
// crypto/ed25519 defines, which may have been built by hand, is whole and
// that its public half belongs to its private half; a signature with a
// broken key would only show as the server's invalid_client. Keys of other
// types, such as a KMS's, are left to their Sign method. The standard
// library panics on some incomplete keys, such as an ECDSA key without its
// scalar; checkConsistent reports those as errors.
func checkConsistent(key crypto.Signer) (err error) {
	defer func() {
		if recover() != nil {
			err = errors.New("introspection: SigningKey's key is incomplete")
		}
	}()
	switch k := key.(type) {
	case *rsa.PrivateKey:
		for _, p := range k.Primes {
			if p == nil {
				return errors.New("introspection: SigningKey's RSA key is incomplete")
			}
		}
		if err := k.Validate(); err != nil {
			return fmt.Errorf("introspection: SigningKey's RSA key is not valid: %w", err)
		}
	case *ecdsa.PrivateKey:
		d, err := k.Bytes()
		if err != nil {
			return fmt.Errorf("introspection: SigningKey's ECDSA key is not valid: %w", err)
		}
		derived, err := ecdsa.ParseRawPrivateKey(k.Curve, d)
		if err != nil || !derived.PublicKey.Equal(&k.PublicKey) {
			return errors.New("introspection: SigningKey's ECDSA public key does not belong to its private key")
		}
	case ed25519.PrivateKey:
		if !bytes.Equal(ed25519.NewKeyFromSeed(k.Seed())[32:], k[32:]) {
			return errors.New("introspection: SigningKey's Ed25519 public key does not belong to its private key")
		}
	}
	return nil
}

// check checks k and returns the algorithm it signs with and its key.
func (k *SigningKey) check() (string, signingAlg, signingKeyInfo, error) {
	if k == nil {
		return "", signingAlg{}, signingKeyInfo{}, errors.New("introspection: no SigningKey")
	}
	info, err := describeSigningKey(k.Key)
	if err != nil {
		return "", signingAlg{}, signingKeyInfo{}, err
	}
	if err := checkConsistent(k.Key); err != nil {
		return "", signingAlg{}, signingKeyInfo{}, err
	}
	name := k.Algorithm
	if name == "" {
		name = info.alg
	}
	alg, ok := signingAlgs[name]
	switch {
	case !ok:
		return "", signingAlg{}, signingKeyInfo{}, fmt.Errorf("introspection: SigningKey.Algorithm %q is not supported; want %s", name, signingAlgNames)
	case alg.kty != info.kty || alg.curve != nil && info.name != alg.curve.Params().Name:
		return "", signingAlg{}, signingKeyInfo{}, fmt.Errorf("introspection: SigningKey.Algorithm %q does not fit its %s key", name, info.name)
	case !utf8.ValidString(k.KeyID):
		return "", signingAlg{}, signingKeyInfo{}, errors.New("introspection: SigningKey.KeyID is not valid UTF-8")
	}
	return name, alg, info, nil
}

// ParseSigningKey reads a private key from PEM (PKCS#8 "PRIVATE KEY", PKCS#1
// "RSA PRIVATE KEY", SEC1 "EC PRIVATE KEY"; the first private key block,
// after any certificates or EC parameters; encrypted PEM refused) or from a
// JWK (a JSON object with kty RSA, EC or OKP/Ed25519 and its private
// members, RFC 7518 §6 and RFC 8037 §2; kid and alg are taken from it), or
// from the JSON key file ZITADEL gives out for an application's key (the
// PEM key in "key", its id, taken as the kid, in "keyId"). The
// key must suit a [SigningKey]: its algorithm, curve and size are checked as
// the verifier checks them. At most 1 MiB is read.
//
// Errors start with "introspection: " and never hold key material.
func ParseSigningKey(data []byte) (*SigningKey, error) {
	if len(data) > maxSigningKeyInput {
		return nil, fmt.Errorf("introspection: the signing key is larger than %d bytes", maxSigningKeyInput)
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff")) // a byte order mark, as some editors write
	var k *SigningKey
	var err error
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		k, err = parseJWK(data)
	} else {
		k, err = parsePEMKey(data)
	}
	if err != nil {
		return nil, boundError(err)
	}
	if _, _, _, err := k.check(); err != nil {
		return nil, boundError(err)
	}
	return k, nil
}

// boundError returns err, cut to maxSigningKeyError bytes if longer.
func boundError(err error) error {
	if msg := err.Error(); len(msg) > maxSigningKeyError {
		return &boundedError{msg: truncate(msg, maxSigningKeyError), err: err}
	}
	return err
}

// maxSigningKeyError bounds the length of ParseSigningKey's errors.
const maxSigningKeyError = 512

// boundedError is an error of ParseSigningKey whose text was cut to
// maxSigningKeyError bytes; it wraps the whole one.
type boundedError struct {
	msg string
	err error
}

func (e *boundedError) Error() string { return e.msg }
func (e *boundedError) Unwrap() error { return e.err }

// Names that ParseSigningKey's errors may quote when the input holds them:
// its errors never repeat other text of the input.
var (
	// knownPEMTypes are PEM block types of keys and certificates.
	knownPEMTypes = []string{"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY",
		"DSA PRIVATE KEY", "OPENSSH PRIVATE KEY", "PUBLIC KEY", "RSA PUBLIC KEY", "EC PARAMETERS",
		"CERTIFICATE", "TRUSTED CERTIFICATE", "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST", "X509 CRL"}
	// knownCurves are the JWK curves of RFC 7518 §6.2.1.1, RFC 8037 §2
	// and RFC 8812 §3.1.
	knownCurves = []string{"P-256", "P-384", "P-521", "Ed25519", "Ed448", "X25519", "X448", "secp256k1"}
	// knownJWSAlgs are the JWS algorithms of RFC 7518 §3.1, RFC 8037 §3.1
	// and RFC 8812 §3.2.
	knownJWSAlgs = []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
		"PS256", "PS384", "PS512", "EdDSA", "ES256K", "none"}
	// knownUses are the JWK "use" values of RFC 7517 §4.2.
	knownUses = []string{"sig", "enc"}
)

// shownName returns value quoted when it is one of known, and unknown
// otherwise, so that an error names what it found without repeating text
// of the input.
func shownName(value []byte, known []string, unknown string) string {
	if slices.Contains(known, string(value)) {
		return strconv.Quote(string(value))
	}
	return unknown
}

// parsePEMKey reads the first private key block of data.
func parsePEMKey(data []byte) (*SigningKey, error) {
	var skipped []string // types of the blocks before the key
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] != "" || block.Headers["DEK-Info"] != "" {
			return nil, errors.New("introspection: the signing key is encrypted; give it decrypted (openssl pkey -in key.pem -out plain.pem)")
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, pkcs8Error(block.Bytes, err)
			}
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("introspection: the PKCS#1 RSA PRIVATE KEY block does not parse: %w", err)
			}
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("introspection: the SEC1 EC PRIVATE KEY block does not parse (an unsupported curve?): %w", err)
			}
		case "DSA PRIVATE KEY":
			return nil, errors.New("introspection: DSA keys are not supported; use an RSA, ECDSA (P-256, P-384) or Ed25519 key")
		case "OPENSSH PRIVATE KEY":
			return nil, errors.New("introspection: OpenSSH private keys are not supported; give the key as PKCS#8 PEM")
		default:
			if strings.HasSuffix(block.Type, "PRIVATE KEY") {
				return nil, errors.New("introspection: the PEM block is a private key of a type that is not supported; want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY")
			}
			skipped = append(skipped, block.Type)
			continue
		}
		signer, err := pemSigner(key)
		if err != nil {
			return nil, err
		}
		return &SigningKey{Key: signer}, nil
	}
	for _, typ := range skipped {
		if strings.HasSuffix(typ, "PUBLIC KEY") || strings.HasSuffix(typ, "CERTIFICATE") {
			return nil, fmt.Errorf("introspection: the PEM data holds a public key or certificate (%s) but no private key",
				shownName([]byte(typ), knownPEMTypes, "a block of another type"))
		}
	}
	if len(skipped) > 0 {
		return nil, fmt.Errorf("introspection: the PEM data holds no private key block (the first block is %s)",
			shownName([]byte(skipped[0]), knownPEMTypes, "of a type it does not know"))
	}
	return nil, errors.New("introspection: the signing key is neither a JWK object nor PEM data: no PEM block found")
}

// pemSigner returns key, from x509, as a signer a SigningKey may hold.
func pemSigner(key any) (crypto.Signer, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	case *ecdh.PrivateKey:
		return nil, errors.New("introspection: the key is an X25519 or ECDH key, which cannot sign")
	default:
		return nil, fmt.Errorf("introspection: keys of type %T are not supported", key)
	}
}

// Object identifiers of PKCS#8 key algorithms named in errors.
var (
	oidRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidDSA     = asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}
	oidEC      = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidEd448   = asn1.ObjectIdentifier{1, 3, 101, 113}
	oidX448    = asn1.ObjectIdentifier{1, 3, 101, 111}
	oidX25519  = asn1.ObjectIdentifier{1, 3, 101, 110}
	oidUnknown = asn1.ObjectIdentifier{}
)

// pkcs8Error returns the error for a PKCS#8 key that x509 refused with err,
// naming the key's algorithm where it is one people use.
func pkcs8Error(der []byte, err error) error {
	var info struct {
		Version   int
		Algorithm struct {
			Algorithm  asn1.ObjectIdentifier
			Parameters asn1.RawValue `asn1:"optional"`
		}
		PrivateKey []byte
	}
	oid := oidUnknown
	if _, perr := asn1.Unmarshal(der, &info); perr == nil {
		oid = info.Algorithm.Algorithm
	}
	switch {
	case oid.Equal(oidDSA):
		return errors.New("introspection: DSA keys are not supported; use an RSA, ECDSA (P-256, P-384) or Ed25519 key")
	case oid.Equal(oidEd448):
		return errors.New("introspection: Ed448 keys are not supported; use an Ed25519, ECDSA (P-256, P-384) or RSA key")
	case oid.Equal(oidX25519), oid.Equal(oidX448):
		return errors.New("introspection: the key is an X25519 or X448 key, which cannot sign")
	case oid.Equal(oidEC):
		return fmt.Errorf("introspection: the PKCS#8 EC key does not parse (an unsupported curve?): %w", err)
	case len(oid) > 0 && !oid.Equal(oidRSA) && !oid.Equal(oidEd25519):
		// x509's error would show the identifier, the input's.
		return errors.New("introspection: the PKCS#8 key's algorithm is not supported; use an RSA, ECDSA (P-256, P-384) or Ed25519 key")
	}
	return fmt.Errorf("introspection: the PKCS#8 PRIVATE KEY block does not parse: %w", err)
}

// jwkMembers holds the members of a JWK that ParseSigningKey reads, each
// decoded from its JSON string (nil when absent).
type jwkMembers struct {
	kty, crv, kid, alg, use    []byte
	d, x, y                    []byte
	n, e, p, q, dp, dq, qi     []byte
	keyOps                     []string
	hasKeyOps, hasOth, hasKeys bool
	// A ZITADEL key file: the PEM key and its id.
	key, keyID []byte
}

// parseJWK reads a private JWK, or a ZITADEL key file (a JSON object with
// the PEM key as "key" and its id as "keyId"). The JSON must be strict
// (valid UTF-8, one object, no member twice), and every member it reads
// must be a string. Members it does not know are ignored (RFC 7517 §4).
func parseJWK(data []byte) (*SigningKey, error) {
	if reason := strictObject(data, "is not valid UTF-8", "is not valid JSON", "is not a JSON object", "has a member twice"); reason != "" {
		return nil, errors.New("introspection: the JWK " + reason)
	}
	var m jwkMembers
	for it := (members{data: bytes.TrimLeft(data, " \t\r\n")}); it.next(); {
		var dst *[]byte
		switch string(it.name) {
		case "kty":
			dst = &m.kty
		case "crv":
			dst = &m.crv
		case "kid":
			dst = &m.kid
		case "alg":
			dst = &m.alg
		case "use":
			dst = &m.use
		case "d":
			dst = &m.d
		case "x":
			dst = &m.x
		case "y":
			dst = &m.y
		case "n":
			dst = &m.n
		case "e":
			dst = &m.e
		case "p":
			dst = &m.p
		case "q":
			dst = &m.q
		case "dp":
			dst = &m.dp
		case "dq":
			dst = &m.dq
		case "qi":
			dst = &m.qi
		case "key":
			dst = &m.key
		case "keyId":
			dst = &m.keyID
		case "key_ops":
			m.hasKeyOps = true
			if json.Unmarshal(it.value, &m.keyOps) != nil {
				return nil, errors.New(`introspection: the JWK member "key_ops" is not an array of strings`)
			}
			continue
		case "oth":
			m.hasOth = true
			continue
		case "keys":
			m.hasKeys = true
			continue
		default:
			continue
		}
		s, ok := jsonString(it.value)
		if !ok {
			return nil, fmt.Errorf("introspection: the JWK member %q is not a string", it.name)
		}
		*dst = s
	}
	switch {
	case m.kty == nil && m.key != nil:
		// ZITADEL's key file for an API application or a service account:
		// {"type":"application","keyId":"…","key":"-----BEGIN RSA PRIVATE KEY-----…","clientId":"…"}.
		k, err := parsePEMKey(m.key)
		if err != nil {
			return nil, err
		}
		k.KeyID = string(m.keyID)
		return k, nil
	case m.hasKeys && m.kty == nil:
		return nil, errors.New("introspection: the signing key is a JWK Set; give the one private JWK")
	case m.kty == nil:
		return nil, errors.New(`introspection: the JWK has no "kty"`)
	case m.use != nil && string(m.use) != "sig":
		return nil, fmt.Errorf(`introspection: the JWK's "use" is %s, not "sig"`, shownName(m.use, knownUses, "another value"))
	case m.hasKeyOps && !slices.Contains(m.keyOps, "sign"):
		return nil, errors.New(`introspection: the JWK's "key_ops" does not allow "sign"`)
	case len(m.alg) > 0 && !isSigningAlg(string(m.alg)):
		return nil, fmt.Errorf(`introspection: the JWK's "alg" %s is not supported; want %s`,
			shownName(m.alg, knownJWSAlgs, "(not a JWS algorithm it knows)"), signingAlgNames)
	}
	var key crypto.Signer
	var err error
	switch string(m.kty) {
	case "RSA":
		key, err = m.rsaKey()
	case "EC":
		key, err = m.ecKey()
	case "OKP":
		key, err = m.okpKey()
	case "oct":
		return nil, errors.New(`introspection: the JWK is a symmetric key (kty "oct"); for client_secret_jwt set ClientSecret instead`)
	default:
		return nil, errors.New(`introspection: the JWK's "kty" is not supported; want RSA, EC or OKP`)
	}
	if err != nil {
		return nil, err
	}
	return &SigningKey{Key: key, KeyID: string(m.kid), Algorithm: string(m.alg)}, nil
}

// errJWKPublic is the error for a JWK without its private member d.
var errJWKPublic = errors.New(`introspection: the JWK is a public key (it has no "d"); the verifier needs the private key`)

// jwkBytes decodes the member name, of value v (base64url without
// padding, RFC 7515 §2), into at most limit bytes; exact, when not 0, is
// the length it must have.
func jwkBytes(name string, v []byte, limit, exact int) ([]byte, error) {
	if v == nil {
		return nil, fmt.Errorf("introspection: the JWK has no %q", name)
	}
	for _, c := range v {
		if !b64Char(c) {
			return nil, fmt.Errorf("introspection: the JWK member %q is not base64url without padding", name)
		}
	}
	if b64.DecodedLen(len(v)) > limit {
		return nil, fmt.Errorf("introspection: the JWK member %q is too long", name)
	}
	b, ok := decodeB64(make([]byte, limit), string(v))
	switch {
	case !ok:
		return nil, fmt.Errorf("introspection: the JWK member %q is not base64url without padding", name)
	case len(b) == 0:
		return nil, fmt.Errorf("introspection: the JWK member %q is empty", name)
	case exact != 0 && len(b) != exact:
		return nil, fmt.Errorf("introspection: the JWK member %q has %d bytes; want %d", name, len(b), exact)
	}
	return b, nil
}

// rsaKey builds an RSA key, RFC 7518 §6.3: n, e, d, p and q; dp, dq and qi
// all or none (Go computes them when none is given). The size is checked
// before any arithmetic on the key.
func (m *jwkMembers) rsaKey() (crypto.Signer, error) {
	if m.d == nil {
		return nil, errJWKPublic
	}
	if m.hasOth {
		return nil, errors.New(`introspection: JWKs of RSA keys with more than two primes ("oth") are not supported`)
	}
	// The integers are unsigned, big-endian, and may have a leading zero
	// octet, RFC 7518 §6.3. One more byte for n, to tell a key just past
	// the bound from a malformed one.
	const limit = maxSigningKeyRSABits/8 + 1
	integer := func(name string, v []byte, limit int) (*big.Int, error) {
		if v == nil {
			return nil, fmt.Errorf("introspection: the JWK's RSA key has no %q; keys without their primes are not supported", name)
		}
		b, err := jwkBytes(name, v, limit, 0)
		if err != nil {
			return nil, err
		}
		return new(big.Int).SetBytes(b), nil
	}
	n, err := integer("n", m.n, limit+1)
	if err != nil {
		return nil, err
	}
	if bits := n.BitLen(); bits < minSigningKeyRSABits || bits > maxSigningKeyRSABits {
		return nil, fmt.Errorf("introspection: the JWK's RSA key has %d bits; want %d to %d", bits, minSigningKeyRSABits, maxSigningKeyRSABits)
	}
	e, err := integer("e", m.e, 4)
	if err != nil {
		return nil, err
	}
	if e.Sign() == 0 || e.BitLen() > 31 {
		return nil, errors.New(`introspection: the JWK member "e" is not a usable RSA exponent`)
	}
	key := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: int(e.Int64())}, Primes: make([]*big.Int, 2)}
	if key.D, err = integer("d", m.d, limit); err != nil {
		return nil, err
	}
	if key.Primes[0], err = integer("p", m.p, limit); err != nil {
		return nil, err
	}
	if key.Primes[1], err = integer("q", m.q, limit); err != nil {
		return nil, err
	}
	switch {
	case m.dp != nil && m.dq != nil && m.qi != nil:
		pc := &key.Precomputed
		if pc.Dp, err = integer("dp", m.dp, limit); err != nil {
			return nil, err
		}
		if pc.Dq, err = integer("dq", m.dq, limit); err != nil {
			return nil, err
		}
		if pc.Qinv, err = integer("qi", m.qi, limit); err != nil {
			return nil, err
		}
	case m.dp != nil || m.dq != nil || m.qi != nil:
		return nil, errors.New(`introspection: the JWK's RSA key has some of "dp", "dq" and "qi" but not all (RFC 7518 §6.3.2)`)
	}
	// As x509.ParsePKCS1PrivateKey does: Validate checks every member,
	// the CRT values included, against the others.
	key.Precompute()
	if err := key.Validate(); err != nil {
		return nil, fmt.Errorf("introspection: the JWK's members are not a valid RSA key: %w", err)
	}
	return key, nil
}

// jwkCurves are the curves of EC JWKs, RFC 7518 §6.2.1.1, with the size of
// their coordinates.
var jwkCurves = map[string]struct {
	curve elliptic.Curve
	size  int
}{
	"P-256": {elliptic.P256(), 32},
	"P-384": {elliptic.P384(), 48},
}

// ecKey builds an EC key, RFC 7518 §6.2: d of the curve's size, and x and
// y, which must be d's public point.
func (m *jwkMembers) ecKey() (crypto.Signer, error) {
	if m.crv == nil {
		return nil, errors.New(`introspection: the JWK has no "crv"`)
	}
	c, ok := jwkCurves[string(m.crv)]
	if !ok {
		return nil, fmt.Errorf("introspection: the JWK's curve %s is not supported; want P-256 (ES256) or P-384 (ES384)",
			shownName(m.crv, knownCurves, "(not one it knows)"))
	}
	if m.d == nil {
		return nil, errJWKPublic
	}
	x, err := jwkBytes("x", m.x, c.size, c.size)
	if err != nil {
		return nil, err
	}
	y, err := jwkBytes("y", m.y, c.size, c.size)
	if err != nil {
		return nil, err
	}
	d, err := jwkBytes("d", m.d, c.size, c.size)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.ParseRawPrivateKey(c.curve, d)
	if err != nil {
		return nil, errors.New(`introspection: the JWK member "d" is not a valid private key on its curve`)
	}
	point, err := key.PublicKey.Bytes()
	if err != nil || !bytes.Equal(point[1:1+c.size], x) || !bytes.Equal(point[1+c.size:], y) {
		return nil, errors.New(`introspection: the JWK members "x" and "y" do not match "d"`)
	}
	return key, nil
}

// okpKey builds an Ed25519 key, RFC 8037 §2: d, the seed, and x, which
// must be its public key.
func (m *jwkMembers) okpKey() (crypto.Signer, error) {
	if m.crv == nil {
		return nil, errors.New(`introspection: the JWK has no "crv"`)
	}
	if string(m.crv) != "Ed25519" {
		return nil, fmt.Errorf("introspection: the JWK's curve %s is not supported; want Ed25519 (EdDSA)",
			shownName(m.crv, knownCurves, "(not one it knows)"))
	}
	if m.d == nil {
		return nil, errJWKPublic
	}
	x, err := jwkBytes("x", m.x, ed25519.PublicKeySize, ed25519.PublicKeySize)
	if err != nil {
		return nil, err
	}
	d, err := jwkBytes("d", m.d, ed25519.SeedSize, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	key := ed25519.NewKeyFromSeed(d)
	if !bytes.Equal(key.Public().(ed25519.PublicKey), x) {
		return nil, errors.New(`introspection: the JWK member "x" does not match "d"`)
	}
	return key, nil
}

// displayAlgorithm returns the algorithm k signs with, for display: its
// Algorithm, or the one its key implies, or "" when neither is known.
func (k *SigningKey) displayAlgorithm() string {
	if k.Algorithm != "" {
		return k.Algorithm
	}
	info, err := describeSigningKey(k.Key)
	if err != nil {
		return ""
	}
	return info.alg
}

// String returns a description of k that shows its algorithm and key id
// but never the key: introspection.SigningKey{Algorithm:"ES256" KeyID:"k1"
// Key:REDACTED}.
func (k *SigningKey) String() string {
	if k == nil {
		return "<nil>"
	}
	key := redacted
	if k.Key == nil {
		key = "<nil>"
	}
	return fmt.Sprintf("introspection.SigningKey{Algorithm:%q KeyID:%q Key:%s}", k.displayAlgorithm(), k.KeyID, key)
}

// Format implements [fmt.Formatter] so that every verb, %#v, %+v and %x
// included, prints [SigningKey.String] rather than the key. It has a value
// receiver, unlike String, so that a SigningKey printed by value, or as a
// field of another struct, is redacted too.
func (k SigningKey) Format(f fmt.State, verb rune) {
	fmt.Fprint(f, (&k).String())
}

// LogValue implements [slog.LogValuer]: the algorithm, the key id, and
// key=REDACTED.
func (k *SigningKey) LogValue() slog.Value {
	if k == nil {
		return slog.StringValue("<nil>")
	}
	return slog.GroupValue(
		slog.String("algorithm", k.displayAlgorithm()),
		slog.String("key_id", k.KeyID),
		slog.String("key", redacted),
	)
}

// MarshalJSON implements [json.Marshaler] with the fields of LogValue, so
// that a SigningKey marshalled to JSON, as slog's JSON handler does with a
// SigningKey value, does not show the key.
func (k SigningKey) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Algorithm string `json:"algorithm"`
		KeyID     string `json:"key_id"`
		Key       string `json:"key"`
	}{k.displayAlgorithm(), k.KeyID, redacted})
}
