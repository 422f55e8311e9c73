package sign

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Armor block types (RFC 4880, section 6.2).
const (
	armorSignature  = "PGP SIGNATURE"
	armorPublicKey  = "PGP PUBLIC KEY BLOCK"
	armorPrivateKey = "PGP PRIVATE KEY BLOCK"
)

// armorBlock is one decoded ASCII-armored block.
type armorBlock struct {
	typ  string
	body []byte
}

// decodeArmor decodes every ASCII-armored block in text. It is stricter than
// RFC 4880 readers usually are, because armored text reaches MIG from
// untrusted carriers: only whitespace may come before, between and after the
// blocks; every BEGIN line needs the matching END line; the body must be
// canonical base64; and an optional CRC-24 checksum line must match. Armor
// headers ("Version: ...", "Comment: ...") are accepted and ignored, with or
// without the blank line that should end them.
func decodeArmor(text []byte) ([]armorBlock, error) {
	lines := strings.Split(string(text), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	var blocks []armorBlock
	i := 0
	for i < len(lines) {
		if lines[i] == "" {
			i++
			continue
		}
		begin := lines[i]
		if !strings.HasPrefix(begin, "-----BEGIN ") || !strings.HasSuffix(begin, "-----") ||
			len(begin) <= len("-----BEGIN ")+len("-----") {
			return nil, fmt.Errorf("unexpected text %q outside an armored block", shorten(begin))
		}
		typ := begin[len("-----BEGIN ") : len(begin)-len("-----")]
		end := "-----END " + typ + "-----"
		i++
		// Armor headers: lines holding a colon, which base64 never does.
		for i < len(lines) && strings.Contains(lines[i], ":") {
			if strings.HasPrefix(lines[i], "-----") {
				break
			}
			i++
		}
		var b64 strings.Builder
		var checksum string
		closed := false
		for ; i < len(lines); i++ {
			line := lines[i]
			if strings.HasPrefix(line, "-----") {
				if line != end {
					return nil, fmt.Errorf("armored %q block ends with %q", typ, shorten(line))
				}
				closed = true
				i++
				break
			}
			if line == "" {
				continue
			}
			if checksum != "" {
				return nil, fmt.Errorf("armored %q block has data after its checksum", typ)
			}
			if line[0] == '=' && len(line) == 5 {
				checksum = line[1:]
				continue
			}
			b64.WriteString(line)
		}
		if !closed {
			return nil, fmt.Errorf("armored %q block has no %q line", typ, end)
		}
		body, err := base64.StdEncoding.Strict().DecodeString(b64.String())
		if err != nil {
			return nil, fmt.Errorf("armored %q block: bad base64: %w", typ, err)
		}
		if len(body) == 0 {
			return nil, fmt.Errorf("armored %q block is empty", typ)
		}
		if checksum != "" {
			sum, err := base64.StdEncoding.Strict().DecodeString(checksum)
			if err != nil || len(sum) != 3 {
				return nil, fmt.Errorf("armored %q block: bad checksum line %q", typ, checksum)
			}
			want := uint32(sum[0])<<16 | uint32(sum[1])<<8 | uint32(sum[2])
			if got := crc24(body); got != want {
				return nil, fmt.Errorf("armored %q block: checksum %06X does not match its data (%06X)", typ, want, got)
			}
		}
		blocks = append(blocks, armorBlock{typ: typ, body: body})
	}
	if len(blocks) == 0 {
		return nil, errors.New("no armored block found")
	}
	return blocks, nil
}

// crc24 computes the OpenPGP armor checksum of RFC 4880, section 6.1.
func crc24(data []byte) uint32 {
	const (
		init = 0xB704CE
		poly = 0x1864CFB
	)
	crc := uint32(init)
	for _, b := range data {
		crc ^= uint32(b) << 16
		for range 8 {
			crc <<= 1
			if crc&0x1000000 != 0 {
				crc ^= poly
			}
		}
	}
	return crc & 0xFFFFFF
}

// shorten returns s cut to a length that is reasonable in an error message.
func shorten(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}
