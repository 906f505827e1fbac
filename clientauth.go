package introspection

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	_ "crypto/sha512" // crypto.SHA384, for ES384
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Client authentication methods besides the client secret ones, by their
// names in the IANA "OAuth Token Endpoint Authentication Methods" registry.
const (
	// ClientSecretJWT sends a client assertion (RFC 7523 §2.2) signed
	// with HS256 and the client secret, which must have at least
	// MinClientSecretJWTSize bytes (OpenID Connect Core §9).
	ClientSecretJWT ClientAuthMethod = "client_secret_jwt"
	// PrivateKeyJWT sends a client assertion (RFC 7523 §2.2) signed with
	// Settings.PrivateKey.
	PrivateKeyJWT ClientAuthMethod = "private_key_jwt"
	// TLSClientAuth authenticates with a client certificate from a CA the
	// server trusts, RFC 8705 §2.1.
	TLSClientAuth ClientAuthMethod = "tls_client_auth"
	// SelfSignedTLSClientAuth authenticates with a self-signed client
	// certificate registered with the server, RFC 8705 §2.2.
	SelfSignedTLSClientAuth ClientAuthMethod = "self_signed_tls_client_auth"
)

// MinClientSecretJWTSize is the shortest ClientSecret, in bytes, accepted
// for client_secret_jwt: HS256 needs a key at least as long as its output
// (RFC 7518 §3.2).
const MinClientSecretJWTSize = 32

// ClientAssertionLifetime is how far ahead of iat a client assertion's exp
// lies. Each assertion is used for one request, at once.
const ClientAssertionLifetime = 60 * time.Second

// jwtSigner signs compact JWS (RFC 7515 §7.1) of one algorithm with one
// key. Its fields hold no key material that fmt could show: the key is
// inside sign.
type jwtSigner struct {
	name   string // the JWS alg
	header string // the protected header, encoded
	sign   func(input []byte) ([]byte, error)
}

// newKeySigner checks k (the algorithm fits the key, the RSA size bounds,
// the curve) and returns its signer.
func newKeySigner(k *SigningKey) (*jwtSigner, error) {
	name, alg, info, err := k.check()
	if err != nil {
		return nil, err
	}
	key := k.Key
	// RFC 7518 §3.3 and §3.4 sign a hash of the input; EdDSA (RFC 8037
	// §3.1, alg.hash 0) signs the input itself.
	var opts crypto.SignerOpts = alg.hash
	if alg.pss {
		// RFC 7518 §3.5: the salt is as long as the hash.
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: alg.hash}
	}
	var size int // of the signature, or of each of r and s for ECDSA
	switch info.kty {
	case "RSA":
		size = info.pub.(*rsa.PublicKey).Size()
	case "EC":
		size = (alg.curve.Params().BitSize + 7) / 8
	default:
		size = ed25519.SignatureSize
	}
	sign := func(input []byte) ([]byte, error) {
		digest := input
		if alg.hash != 0 {
			h := alg.hash.New()
			h.Write(input)
			digest = h.Sum(nil)
		}
		sig, err := key.Sign(rand.Reader, digest, opts)
		switch {
		case err != nil:
			return nil, err
		case info.kty == "EC":
			return rawECDSASignature(sig, size)
		case len(sig) != size:
			return nil, fmt.Errorf("the %s signature has length %d, not %d", name, len(sig), size)
		}
		return sig, nil
	}
	return newJWTSigner(name, k.KeyID, sign)
}

// rawECDSASignature converts der, an ASN.1 ECDSA-Sig-Value as
// crypto.Signer returns it, into the JWS form, RFC 7518 §3.4: r and s,
// each big-endian and zero-padded to size bytes.
func rawECDSASignature(der []byte, size int) ([]byte, error) {
	var v struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &v)
	switch {
	case err != nil || len(rest) != 0:
		return nil, errors.New("the ECDSA signature is not DER")
	case v.R.Sign() <= 0 || v.S.Sign() <= 0 || v.R.BitLen() > 8*size || v.S.BitLen() > 8*size:
		return nil, errors.New("the ECDSA signature's r or s is out of range")
	}
	sig := make([]byte, 2*size)
	v.R.FillBytes(sig[:size])
	v.S.FillBytes(sig[size:])
	return sig, nil
}

// newSecretSigner returns an HS256 signer keyed with the octets of secret
// (OpenID Connect Core §9); a secret shorter than MinClientSecretJWTSize is
// an error.
func newSecretSigner(secret string) (*jwtSigner, error) {
	if len(secret) < MinClientSecretJWTSize {
		return nil, fmt.Errorf("introspection: client_secret_jwt needs a ClientSecret of at least %d bytes (RFC 7518 §3.2); this one is shorter", MinClientSecretJWTSize)
	}
	key := []byte(secret)
	return newJWTSigner("HS256", "", func(input []byte) ([]byte, error) {
		m := hmac.New(sha256.New, key)
		m.Write(input)
		return m.Sum(nil), nil
	})
}

// newJWTSigner returns a signer for alg, whose header carries kid when set.
func newJWTSigner(alg, kid string, sign func([]byte) ([]byte, error)) (*jwtSigner, error) {
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid,omitempty"`
	}{alg, kid})
	if err != nil {
		return nil, fmt.Errorf("introspection: encoding the assertion header: %w", err)
	}
	return &jwtSigner{name: alg, header: base64.RawURLEncoding.EncodeToString(header), sign: sign}, nil
}

// alg returns the JWS alg the signer uses.
func (s *jwtSigner) alg() string { return s.name }

// assertionClaims are the claims of a client assertion, RFC 7523 §3.
type assertionClaims struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Aud string `json:"aud"`
	JTI string `json:"jti"`
	IAT int64  `json:"iat"`
	Exp int64  `json:"exp"`
}

// clientAssertion returns a fresh RFC 7523 client assertion for clientID
// and audience at now: iss and sub are clientID, jti is 16 random bytes,
// iat is now in whole seconds and exp ClientAssertionLifetime later. No two
// calls return the same assertion.
func (s *jwtSigner) clientAssertion(clientID, audience string, now time.Time) (string, error) {
	switch {
	case clientID == "" || !utf8.ValidString(clientID):
		return "", errors.New("introspection: a client assertion needs a client id of valid UTF-8")
	case audience == "" || !utf8.ValidString(audience):
		return "", errors.New("introspection: a client assertion needs an audience of valid UTF-8")
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", fmt.Errorf("introspection: making the assertion's jti: %w", err)
	}
	iat := now.Unix()
	claims, err := json.Marshal(assertionClaims{
		Iss: clientID,
		Sub: clientID,
		Aud: audience,
		JTI: base64.RawURLEncoding.EncodeToString(id[:]),
		IAT: iat,
		Exp: iat + int64(ClientAssertionLifetime/time.Second),
	})
	if err != nil {
		return "", fmt.Errorf("introspection: encoding the assertion claims: %w", err)
	}
	enc := base64.RawURLEncoding
	// Room for the longest signature, of an RSA key of maxSigningKeyRSABits.
	b := make([]byte, 0, len(s.header)+1+enc.EncodedLen(len(claims))+1+enc.EncodedLen(maxSigningKeyRSABits/8))
	b = append(b, s.header...)
	b = append(b, '.')
	b = enc.AppendEncode(b, claims)
	sig, err := s.sign(b)
	if err != nil {
		return "", fmt.Errorf("introspection: signing the %s client assertion: %w", s.name, err)
	}
	b = append(b, '.')
	b = enc.AppendEncode(b, sig)
	return string(b), nil
}

// clientCredentials says which kinds of credentials the settings hold.
type clientCredentials struct {
	secret      bool   // ClientSecret is set
	secretJWT   bool   // ClientSecret has at least MinClientSecretJWTSize bytes
	key         bool   // PrivateKey is set
	keyAlg      string // the JWS alg PrivateKey signs with, when key
	certificate bool   // a TLS client certificate is presented
	selfSigned  bool   // the TLSClientCertificate is self-signed
}

// methodPreference lists the methods chooseMethod picks from the server's
// list, best first; selfSignedPreference is its order for a self-signed
// TLSClientCertificate.
var (
	methodPreference = []ClientAuthMethod{
		PrivateKeyJWT, TLSClientAuth, SelfSignedTLSClientAuth, ClientSecretBasic, ClientSecretPost, ClientSecretJWT,
	}
	selfSignedPreference = []ClientAuthMethod{
		PrivateKeyJWT, SelfSignedTLSClientAuth, TLSClientAuth, ClientSecretBasic, ClientSecretPost, ClientSecretJWT,
	}
)

// preference returns the order in which chooseMethod picks from a list
// the server gives: a self-signed certificate is meant for
// self_signed_tls_client_auth (RFC 8705 §2.2), a certificate from a CA for
// tls_client_auth (§2.1).
func (c clientCredentials) preference() []ClientAuthMethod {
	if c.selfSigned {
		return selfSignedPreference
	}
	return methodPreference
}

// defaultOrder returns the order in which chooseMethod picks when the
// server lists no methods, which is also the default without discovery:
// client_secret_basic (RFC 8414 §2's default for an omitted
// token_endpoint_auth_methods_supported), then private_key_jwt, then the
// TLS method that suits the certificate.
func (c clientCredentials) defaultOrder() []ClientAuthMethod {
	if c.selfSigned {
		return []ClientAuthMethod{ClientSecretBasic, PrivateKeyJWT, SelfSignedTLSClientAuth}
	}
	return []ClientAuthMethod{ClientSecretBasic, PrivateKeyJWT, TLSClientAuth}
}

// allows reports whether c holds what method m needs.
func (c clientCredentials) allows(m ClientAuthMethod) bool {
	switch m {
	case PrivateKeyJWT:
		return c.key
	case TLSClientAuth, SelfSignedTLSClientAuth:
		return c.certificate
	case ClientSecretJWT:
		return c.secretJWT
	case ClientSecretBasic, ClientSecretPost:
		return c.secret
	}
	return false
}

// assertionAlg returns the JWS alg of the client assertions of method m,
// or "" for a method that sends none.
func (c clientCredentials) assertionAlg(m ClientAuthMethod) string {
	switch m {
	case PrivateKeyJWT:
		return c.keyAlg
	case ClientSecretJWT:
		return "HS256"
	}
	return ""
}

// signsWith reports whether the server, whose list of client assertion
// signing algorithms is algs, accepts the assertions of method m: always
// for a method without assertions or when the server lists no algorithms
// (algs nil).
func (c clientCredentials) signsWith(m ClientAuthMethod, algs []string) bool {
	alg := c.assertionAlg(m)
	return alg == "" || algs == nil || slices.Contains(algs, alg)
}

// algNote says which of the algorithms c signs with the server's list
// algs leaves out, for an error: "" when none.
func (c clientCredentials) algNote(algs []string) string {
	if algs == nil {
		return ""
	}
	var missing []string
	if c.key && !slices.Contains(algs, c.keyAlg) {
		missing = append(missing, c.keyAlg+" (PrivateKey)")
	}
	if c.secretJWT && !slices.Contains(algs, "HS256") {
		missing = append(missing, "HS256 (ClientSecret)")
	}
	if len(missing) == 0 {
		return ""
	}
	return "; the server's client assertion signing algorithms " + showMethods(algs) +
		" do not include " + strings.Join(missing, " or ")
}

// isSelfSigned reports whether c's leaf certificate is self-signed: its
// issuer is its subject and its signature verifies with its own key. The
// leaf is parsed when c.Leaf is nil; one that does not parse is not
// self-signed.
func isSelfSigned(c *tls.Certificate) bool {
	if c == nil || len(c.Certificate) == 0 {
		return false
	}
	leaf := c.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return false
		}
	}
	return bytes.Equal(leaf.RawIssuer, leaf.RawSubject) &&
		leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil
}

// String names the settings c stands for, never their values.
func (c clientCredentials) String() string {
	var names []string
	if c.secret {
		if c.secretJWT {
			names = append(names, "ClientSecret")
		} else {
			names = append(names, "ClientSecret (shorter than "+strconv.Itoa(MinClientSecretJWTSize)+" bytes)")
		}
	}
	if c.key {
		names = append(names, "PrivateKey")
	}
	if c.certificate {
		names = append(names, "TLSClientCertificate")
	}
	return strings.Join(names, ", ")
}

// methodNeeds says what settings method m needs, for errors.
func methodNeeds(m ClientAuthMethod) string {
	switch m {
	case PrivateKeyJWT:
		return "PrivateKey"
	case TLSClientAuth, SelfSignedTLSClientAuth:
		return "TLSClientCertificate (or an HTTPClient that presents a certificate)"
	case ClientSecretJWT:
		return "a ClientSecret of at least " + strconv.Itoa(MinClientSecretJWTSize) + " bytes"
	}
	return "ClientSecret"
}

// Bounds of a list of the server's (of methods or algorithms) as an error
// shows it.
const (
	// maxShownMethods is the most entries shown; the rest are counted.
	maxShownMethods = 16
	// maxShownMethodLength is the most bytes of one entry shown.
	maxShownMethodLength = 64
)

// showMethods formats a list of the server's for an error: at most
// maxShownMethods entries, each cut to maxShownMethodLength bytes, quoted.
func showMethods(supported []string) string {
	shown := supported[:min(len(supported), maxShownMethods)]
	var b strings.Builder
	b.WriteByte('[')
	for i, m := range shown {
		if i > 0 {
			b.WriteByte(' ')
		}
		if len(m) > maxShownMethodLength {
			m = strings.ToValidUTF8(m[:maxShownMethodLength], "") + "..."
		}
		b.WriteString(strconv.Quote(m))
	}
	if more := len(supported) - len(shown); more > 0 {
		fmt.Fprintf(&b, " and %d more", more)
	}
	b.WriteByte(']')
	return b.String()
}

// chooseMethod picks the client authentication method when
// Settings.ClientAuthMethod is empty, or checks the configured one, against
// the methods the server lists (RFC 8414 §2
// introspection_endpoint_auth_methods_supported, or its token endpoint's
// list) and the algorithms it accepts client assertions signed with
// (introspection_endpoint_auth_signing_alg_values_supported, or its token
// endpoint's list).
//
// A nil list of methods means the server lists none, which RFC 8414 §2
// reads as client_secret_basic: then the configured method is used
// unchecked, or the first the credentials allow of client_secret_basic,
// private_key_jwt and the TLS method that suits the certificate, as
// without discovery. An empty list means the server accepts no method, and
// is an error. From a list, the order of preference among the methods the
// credentials allow: private_key_jwt, tls_client_auth,
// self_signed_tls_client_auth (these two the other way round for a
// self-signed certificate), client_secret_basic, client_secret_post,
// client_secret_jwt. Among the secret methods, client_secret_jwt comes last
// although it sends no secret: servers such as Keycloak and Ory Hydra
// accept only the one method a client is registered with, by default
// client_secret_basic, so it is used only when configured or when the
// server lists no other. Names it does not know, and "none", are never
// chosen.
//
// When the server lists signing algorithms (algs not nil), private_key_jwt
// is allowed only if the key's algorithm is among them, and
// client_secret_jwt only if HS256 is. A configured method the server does
// not list, or whose algorithm it does not list, or one the credentials do
// not allow, or no allowed method listed, is an error naming the server's
// lists and the configured credentials (never their values).
func chooseMethod(configured ClientAuthMethod, supported, algs []string, c clientCredentials) (ClientAuthMethod, error) {
	if configured != "" {
		if !slices.Contains(methodPreference, configured) {
			return "", fmt.Errorf("introspection: unsupported ClientAuthMethod %q", configured)
		}
		if !c.allows(configured) {
			return "", fmt.Errorf("introspection: ClientAuthMethod %q needs %s", configured, methodNeeds(configured))
		}
		if supported != nil && !slices.Contains(supported, string(configured)) {
			return "", fmt.Errorf("introspection: ClientAuthMethod %q is not among the server's client authentication methods %s",
				configured, showMethods(supported))
		}
		if !c.signsWith(configured, algs) {
			return "", fmt.Errorf("introspection: ClientAuthMethod %q signs with %s, which is not among the server's client assertion signing algorithms %s",
				configured, c.assertionAlg(configured), showMethods(algs))
		}
		return configured, nil
	}
	if !c.secret && !c.key && !c.certificate {
		return "", errors.New("introspection: no client credentials are configured (ClientSecret, PrivateKey or TLSClientCertificate)")
	}
	if supported != nil && len(supported) == 0 {
		return "", errors.New("introspection: the server lists no client authentication methods")
	}
	order := c.preference()
	if supported == nil {
		order = c.defaultOrder()
	}
	for _, m := range order {
		if c.allows(m) && c.signsWith(m, algs) && (supported == nil || slices.Contains(supported, string(m))) {
			return m, nil
		}
	}
	if supported == nil {
		return "", fmt.Errorf("introspection: the server lists no client authentication methods, and none the configured credentials (%s) allow can be used%s",
			c, c.algNote(algs))
	}
	return "", fmt.Errorf("introspection: none of the server's client authentication methods %s can be used with the configured credentials (%s)%s",
		showMethods(supported), c, c.algNote(algs))
}
