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
//	2;<unix seconds>;<nonce, lower-case hex>;<base64 of an armored detached signature>
//
// where the signature covers "mig-token-v2;<unix seconds>;<nonce>". The prefix
// keeps a token signature from being valid as an action signature and the
// other way round, and a version 1 signature ("mig-token-v1;…") from being
// valid in a version 2 token.
//
// A version 2 token is for one request: the verifier remembers its nonce
// until [Token.Expires] and refuses it a second time. Version 1 tokens,
// which were reusable for five minutes, are refused.
const (
	// TokenVersion is the first field of every token.
	TokenVersion   = "2"
	tokenSigPrefix = "mig-token-v2;"
	// TokenMaxAge is how old a token may be, by the verifier's clock, when
	// it is used: time enough to type a passphrase into gpg-agent's prompt
	// (the token's time is taken before it is signed) and to send the
	// request, and no more.
	TokenMaxAge = 60 * time.Second
	// TokenMaxSkew is how far the investigator's clock and the verifier's
	// may disagree: a token may be that far in the future, and that much
	// older than TokenMaxAge.
	TokenMaxSkew = 15 * time.Second
	// MaxTokenLen bounds the length of a token.
	MaxTokenLen = 8 << 10
	// tokenNonceBytes is the number of random bytes in a token's nonce.
	tokenNonceBytes = 16
	// maxTokenNonceBytes bounds the nonce a verifier accepts.
	maxTokenNonceBytes = 64
)

// ErrBadToken is wrapped by every error VerifyToken returns.
var ErrBadToken = errors.New("bad API token")

// Token is a token that VerifyToken accepted.
type Token struct {
	// Fingerprint is the signer's primary key fingerprint, upper-case hex.
	Fingerprint string
	// Time is the token's time (whole seconds), set by its maker.
	Time time.Time
	// Nonce is the token's random nonce, lower-case hex.
	Nonce string
}

// Expires returns the first instant at which VerifyToken refuses t as too
// old: a verifier that remembers t's nonce until then refuses every replay
// of t.
func (t Token) Expires() time.Time {
	return t.Time.Add(TokenMaxAge + TokenMaxSkew + time.Second)
}

// MakeToken makes an API authentication token signed by s at time now, for
// one request: it carries 16 random bytes from crypto/rand as its nonce,
// which the server remembers and refuses a second time.
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
// time now and returns what it holds. It refuses malformed tokens, tokens of
// another version (version 1 included: no downgrade), tokens older than
// TokenMaxAge+TokenMaxSkew or more than TokenMaxSkew in the future, and
// tokens whose signature does not verify or was made by a key not in the
// keyring. It does not remember nonces: the caller refuses a nonce it saw
// before (package api keeps them in the store). Every error wraps
// ErrBadToken; a signature error also wraps the error of Verify
// (ErrBadSignature or ErrUnknownSigner).
func VerifyToken(k *Keyring, token string, now time.Time) (Token, error) {
	if len(token) > MaxTokenLen {
		return Token{}, fmt.Errorf("%w: token is %d bytes, more than the limit of %d", ErrBadToken, len(token), MaxTokenLen)
	}
	parts := strings.Split(token, ";")
	if len(parts) != 4 {
		return Token{}, fmt.Errorf("%w: token has %d fields separated by ';', want 4", ErrBadToken, len(parts))
	}
	version, sec, nonce, sig64 := parts[0], parts[1], parts[2], parts[3]
	if version == "1" {
		return Token{}, fmt.Errorf("%w: token version 1 is refused: it could be used many times, and this server "+
			"takes only single-use version %s tokens (upgrade mig)", ErrBadToken, TokenVersion)
	}
	if version != TokenVersion {
		return Token{}, fmt.Errorf("%w: token version %q, want %q", ErrBadToken, shorten(version), TokenVersion)
	}
	t, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || strconv.FormatInt(t, 10) != sec {
		return Token{}, fmt.Errorf("%w: token time %q is not a decimal Unix time", ErrBadToken, shorten(sec))
	}
	if len(nonce) < 2*tokenNonceBytes || len(nonce) > 2*maxTokenNonceBytes || len(nonce)%2 != 0 ||
		strings.ToLower(nonce) != nonce {
		return Token{}, fmt.Errorf("%w: token nonce %q is not %d to %d bytes of lower-case hex",
			ErrBadToken, shorten(nonce), tokenNonceBytes, maxTokenNonceBytes)
	}
	if _, err := hex.DecodeString(nonce); err != nil {
		return Token{}, fmt.Errorf("%w: token nonce %q is not hex", ErrBadToken, shorten(nonce))
	}
	// Compare in seconds, where nothing can overflow.
	maxAge, skew := int64((TokenMaxAge+TokenMaxSkew)/time.Second), int64(TokenMaxSkew/time.Second)
	if t < now.Unix()-maxAge {
		return Token{}, fmt.Errorf("%w: token time %s is more than %s before now (%s): make a new token for every request",
			ErrBadToken, time.Unix(t, 0).UTC().Format(time.RFC3339), TokenMaxAge+TokenMaxSkew, now.UTC().Format(time.RFC3339))
	}
	if t > now.Unix()+skew {
		return Token{}, fmt.Errorf("%w: token time %s is more than %s after now (%s): check the clocks of the investigator's machine and the server",
			ErrBadToken, time.Unix(t, 0).UTC().Format(time.RFC3339), TokenMaxSkew, now.UTC().Format(time.RFC3339))
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(sig64)
	if err != nil {
		return Token{}, fmt.Errorf("%w: token signature is not base64: %w", ErrBadToken, err)
	}
	fp, err := verifyAt(k, []byte(tokenSigPrefix+sec+";"+nonce), string(sig), now)
	if err != nil {
		return Token{}, fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	return Token{Fingerprint: fp, Time: time.Unix(t, 0).UTC(), Nonce: nonce}, nil
}
