package action

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAPIKey(t *testing.T) {
	secret := strings.Repeat("0f", 32)
	good := "mig_0123456789abcdef_" + secret
	id, sec, err := ParseAPIKey(good)
	if err != nil || id != "0123456789abcdef" || sec != secret {
		t.Fatalf("ParseAPIKey(good) = %q, %q, %v", id, sec, err)
	}
	for _, bad := range []string{
		"", "mig_", good + "0", good[:len(good)-1], "MIG_" + good[4:], "mig-" + good[4:],
		"mig_0123456789abcdef-" + secret, "mig_0123456789ABCDEF_" + secret, "mig_0123456789abcdeg_" + secret,
		"mig_0123456789abcdef_" + strings.ToUpper(secret), "mig_0123456789abcdef_" + secret[:63] + "_",
	} {
		_, _, err := ParseAPIKey(bad)
		if !errors.Is(err, ErrAPIKeyFormat) {
			t.Errorf("ParseAPIKey(%q) error = %v, want ErrAPIKeyFormat", bad, err)
		}
	}
}

// FuzzParseAPIKey checks that any header value parses or is refused without
// a panic, that what parses rebuilds the key, and that no error quotes the
// secret part.
func FuzzParseAPIKey(f *testing.F) {
	f.Add("mig_0123456789abcdef_" + strings.Repeat("0f", 32))
	f.Add("mig_0123456789abcdef_" + strings.Repeat("0F", 32))
	f.Add("mig_x")
	f.Fuzz(func(t *testing.T, key string) {
		id, secret, err := ParseAPIKey(key)
		if err != nil {
			if len(key) == APIKeyLen && len(key) > 30 && strings.Contains(err.Error(), key[len(key)-30:]) {
				t.Errorf("error %q quotes the secret part of %q", err, key)
			}
			return
		}
		if APIKeyPrefix+id+"_"+secret != key || len(id) != APIKeyIDLen || len(secret) != APIKeySecretLen {
			t.Errorf("ParseAPIKey(%q) = %q, %q", key, id, secret)
		}
	})
}
