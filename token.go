package introspection

// maxTokenSize caps the length of a bearer token accepted for introspection.
const maxTokenSize = 4096

// b64tokenChars marks the characters of an RFC 6750 §2.1 b64token before
// its trailing "=" padding.
var b64tokenChars = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/") {
		t[c] = true
	}
	return t
}()

// validToken reports whether token is a non-empty RFC 6750 §2.1 b64token of
// at most maxTokenSize bytes:
//
//	b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
func validToken(token string) bool {
	if len(token) == 0 || len(token) > maxTokenSize {
		return false
	}
	i := 0
	for i < len(token) && b64tokenChars[token[i]] {
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(token); i++ {
		if token[i] != '=' {
			return false
		}
	}
	return true
}
