package sign

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Token format constants. A token is
//
//	1;<unix seconds>;<nonce, lower-case hex>;<base64 of an armored detached signature>
//
// where the signature covers "mig-token-v1;<unix seconds>;<nonce>". The prefix
// keeps a token signature from being valid as an action signature and the
// other way round.
const (
	// TokenVersion is the first field of every token.
	TokenVersion   = "1"
	tokenSigPrefix = "mig-token-v1;"
	// TokenMaxAge is how far a token's time may be from the verifier's
	// clock, in either direction.
	TokenMaxAge = 5 * time.Minute
	// MaxTokenLen bounds the length of a token.
	MaxTokenLen = 8 << 10
	// tokenNonceBytes is the number of random bytes in a token's nonce.
	tokenNonceBytes = 16
	// maxTokenNonceBytes bounds the nonce a verifier accepts.
	maxTokenNonceBytes = 64
)

// ErrBadToken is wrapped by every error VerifyToken returns.
var ErrBadToken = errors.New("bad API token")

// MakeToken makes an API authentication token signed by s at time now. The
// token is valid for TokenMaxAge around now and may be used for several
// requests during that time; it carries a random nonce so that no two tokens
// are alike, and a server that wants single-use tokens can remember nonces.
func MakeToken(s Signer, now time.Time) (string, error) {
	nonce := make([]byte, tokenNonceBytes)
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("making token nonce: %w", err)
	}
	sec := strconv.FormatInt(now.Unix(), 10)
	n := hex.EncodeToString(nonce)
	sig, err := s.Sign([]byte(tokenSigPrefix + sec + ";" + n))
	if err != nil {
		return "", fmt.Errorf("signing token: %w", err)
	}
	return TokenVersion + ";" + sec + ";" + n + ";" + base64.StdEncoding.EncodeToString([]byte(sig)), nil
}

// VerifyToken checks an API token made by MakeToken against the keyring at
// time now and returns the fingerprint of the key that signed it. It refuses
// malformed tokens, tokens whose time is more than TokenMaxAge away from now
// in either direction, and tokens whose signature does not verify or was
// made by a key not in the keyring. Every error wraps ErrBadToken; a
// signature error also wraps the error of Verify (ErrBadSignature or
// ErrUnknownSigner).
func VerifyToken(k *Keyring, token string, now time.Time) (fingerprint string, err error) {
	if len(token) > MaxTokenLen {
		return "", fmt.Errorf("%w: token is %d bytes, more than the limit of %d", ErrBadToken, len(token), MaxTokenLen)
	}
	parts := strings.Split(token, ";")
	if len(parts) != 4 {
		return "", fmt.Errorf("%w: token has %d fields separated by ';', want 4", ErrBadToken, len(parts))
	}
	version, sec, nonce, sig64 := parts[0], parts[1], parts[2], parts[3]
	if version != TokenVersion {
		return "", fmt.Errorf("%w: token version %q, want %q", ErrBadToken, shorten(version), TokenVersion)
	}
	t, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || strconv.FormatInt(t, 10) != sec {
		return "", fmt.Errorf("%w: token time %q is not a decimal Unix time", ErrBadToken, shorten(sec))
	}
	if len(nonce) < 2*tokenNonceBytes || len(nonce) > 2*maxTokenNonceBytes || len(nonce)%2 != 0 ||
		strings.ToLower(nonce) != nonce {
		return "", fmt.Errorf("%w: token nonce %q is not %d to %d bytes of lower-case hex",
			ErrBadToken, shorten(nonce), tokenNonceBytes, maxTokenNonceBytes)
	}
	if _, err := hex.DecodeString(nonce); err != nil {
		return "", fmt.Errorf("%w: token nonce %q is not hex", ErrBadToken, shorten(nonce))
	}
	// Compare in seconds, where nothing can overflow.
	maxAge := int64(TokenMaxAge / time.Second)
	if t < now.Unix()-maxAge || t > now.Unix()+maxAge {
		return "", fmt.Errorf("%w: token time %s is more than %s from now (%s)", ErrBadToken,
			time.Unix(t, 0).UTC().Format(time.RFC3339), TokenMaxAge, now.UTC().Format(time.RFC3339))
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(sig64)
	if err != nil {
		return "", fmt.Errorf("%w: token signature is not base64: %w", ErrBadToken, err)
	}
	fp, err := verifyAt(k, []byte(tokenSigPrefix+sec+";"+nonce), string(sig), now)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	return fp, nil
}
