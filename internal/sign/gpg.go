package sign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// GPGTimeout bounds one run of gpg. Signing may wait for the investigator to
// type a passphrase into gpg-agent's pinentry, so it is generous.
const GPGTimeout = 3 * time.Minute

// maxGPGOutput bounds what is kept of gpg's standard output and error.
const maxGPGOutput = 1 << 20

// gpgSigner signs by running GnuPG, so the private key never leaves
// gpg-agent (or the smartcard behind it).
type gpgSigner struct {
	path        string
	homedir     string
	fingerprint string
	keyring     *Keyring // the key's public part, to check every signature gpg makes
}

// NewGPGSigner returns a Signer that runs GnuPG to sign:
// `gpg --batch --armor --detach-sign --local-user KEY`, with the data on
// standard input. gpgPath "" means "gpg" from $PATH; homedir "" means gpg's
// default home (GNUPGHOME or ~/.gnupg). keyID names exactly one key in any way
// gpg understands (fingerprint, key ID, user ID or email). NewGPGSigner
// resolves it once with `gpg --with-colons --list-keys`, so every signature is
// made by the same key, and exports the key's public part to check each
// signature gpg returns before handing it out.
func NewGPGSigner(gpgPath, homedir, keyID string) (Signer, error) {
	if gpgPath == "" {
		gpgPath = "gpg"
	}
	path, err := exec.LookPath(gpgPath)
	if err != nil {
		return nil, fmt.Errorf("finding gpg %q: %w", gpgPath, err)
	}
	if strings.TrimSpace(keyID) == "" {
		return nil, errors.New("gpg key ID is empty")
	}
	g := &gpgSigner{path: path, homedir: homedir}
	out, err := g.run(nil, "--with-colons", "--list-keys", "--", keyID)
	if err != nil {
		return nil, fmt.Errorf("listing gpg key %q: %w", keyID, err)
	}
	fp, err := parseColonsKey(out, keyID)
	if err != nil {
		return nil, err
	}
	pub, err := g.run(nil, "--armor", "--export", "--", fp)
	if err != nil {
		return nil, fmt.Errorf("exporting gpg key %s: %w", fp, err)
	}
	k := &Keyring{}
	got, err := k.Add(string(pub))
	if err != nil {
		return nil, fmt.Errorf("reading the public key gpg exported for %s: %w", fp, err)
	}
	if got != fp {
		return nil, fmt.Errorf("gpg exported key %s for %s", got, fp)
	}
	g.fingerprint = fp
	g.keyring = k
	return g, nil
}

// parseColonsKey reads `gpg --with-colons --list-keys` output and returns the
// fingerprint of the one primary key it lists, refusing none, several, and
// keys that cannot sign.
func parseColonsKey(out []byte, keyID string) (string, error) {
	type key struct {
		validity, caps, fingerprint string
	}
	var keys []key
	inPub := false
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimRight(line, "\r\n"), ":")
		switch f[0] {
		case "pub":
			k := key{}
			if len(f) > 1 {
				k.validity = f[1]
			}
			if len(f) > 11 {
				k.caps = f[11]
			}
			keys = append(keys, k)
			inPub = true
		case "fpr":
			if inPub && len(f) > 9 {
				keys[len(keys)-1].fingerprint = strings.ToUpper(f[9])
			}
			inPub = false
		case "sub", "ssb", "uid", "uat":
			inPub = false
		}
	}
	switch len(keys) {
	case 0:
		return "", fmt.Errorf("%w: gpg lists no key for %q", ErrBadKey, keyID)
	case 1:
	default:
		fps := make([]string, len(keys))
		for i, k := range keys {
			fps[i] = k.fingerprint
		}
		return "", fmt.Errorf("%w: %q names %d gpg keys (%s); give a fingerprint", ErrBadKey, keyID, len(keys), strings.Join(fps, ", "))
	}
	k := keys[0]
	if len(k.fingerprint) != 40 {
		return "", fmt.Errorf("%w: gpg key %q has fingerprint %q, want a version 4 fingerprint", ErrBadKey, keyID, k.fingerprint)
	}
	switch k.validity {
	case "r":
		return "", fmt.Errorf("%w: gpg key %s is revoked", ErrBadKey, k.fingerprint)
	case "e":
		return "", fmt.Errorf("%w: gpg key %s is expired", ErrBadKey, k.fingerprint)
	case "i", "d":
		return "", fmt.Errorf("%w: gpg key %s is invalid or disabled", ErrBadKey, k.fingerprint)
	}
	if !strings.Contains(k.caps, "S") {
		return "", fmt.Errorf("%w: gpg key %s cannot sign (capabilities %q)", ErrBadKey, k.fingerprint, k.caps)
	}
	return k.fingerprint, nil
}

// Sign implements Signer.
func (g *gpgSigner) Sign(data []byte) (string, error) {
	out, err := g.run(data, "--armor", "--digest-algo", "SHA512", "--detach-sign", "--local-user", g.fingerprint)
	if err != nil {
		return "", fmt.Errorf("signing with gpg key %s: %w", g.fingerprint, err)
	}
	sig := string(out)
	fp, err := Verify(g.keyring, data, sig)
	if err != nil {
		return "", fmt.Errorf("gpg made a signature with key %s that does not verify: %w", g.fingerprint, err)
	}
	if fp != g.fingerprint {
		return "", fmt.Errorf("gpg signed with key %s, want %s", fp, g.fingerprint)
	}
	return sig, nil
}

// Fingerprint implements Signer.
func (g *gpgSigner) Fingerprint() string { return g.fingerprint }

// run runs gpg in batch mode with args and stdin, and returns its standard
// output.
func (g *gpgSigner) run(stdin []byte, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), GPGTimeout)
	defer cancel()
	all := []string{"--batch"}
	if g.homedir != "" {
		all = append(all, "--homedir", g.homedir)
	}
	all = append(all, args...)
	cmd := exec.CommandContext(ctx, g.path, all...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	stdout := &limitedBuffer{limit: maxGPGOutput}
	stderr := &limitedBuffer{limit: maxGPGOutput}
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if ctx.Err() != nil {
			return nil, fmt.Errorf("gpg %s: timed out after %s: %s", strings.Join(args, " "), GPGTimeout, msg)
		}
		return nil, fmt.Errorf("gpg %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	if stdout.truncated {
		return nil, fmt.Errorf("gpg %s: output is larger than %d bytes", strings.Join(args, " "), maxGPGOutput)
	}
	return stdout.Bytes(), nil
}

// limitedBuffer keeps the first limit bytes written to it and drops the rest.
type limitedBuffer struct {
	bytes.Buffer
	limit     int
	truncated bool
}

// Write implements io.Writer; it never fails, so the writing process is not
// blocked or killed by a full buffer.
func (b *limitedBuffer) Write(p []byte) (int, error) {
	room := b.limit - b.Len()
	if len(p) > room {
		b.truncated = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}
