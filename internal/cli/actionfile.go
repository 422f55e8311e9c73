package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/client"
	"github.com/migplatform/mig/internal/strictjson"
)

// MaxActionFileSize bounds an action file.
const MaxActionFileSize = 16 << 20

// ErrActionFile is wrapped by every error loading an action file.
var ErrActionFile = errors.New("bad action file")

// LoadActionFile reads an action from a file: a MIG action file (syntax
// version 2, with or without signatures), or a bare operation object
// {"module": ..., "parameters": ...}, which becomes an action named after the
// file with no target and no validity window yet. Errors name the file and,
// for malformed JSON, the line and column.
func LoadActionFile(path string) (*action.Action, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrActionFile, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxActionFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrActionFile, path, err)
	}
	if len(data) > MaxActionFileSize {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrActionFile, path, MaxActionFileSize)
	}
	return ParseActionFile(path, data)
}

// ParseActionFile parses the contents of the action file called name (used
// in errors, and as the name of an action made from a bare operation).
func ParseActionFile(name string, data []byte) (*action.Action, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrActionFile, jsonErrorAt(name, data, err))
	}
	if probe == nil {
		return nil, fmt.Errorf("%w: %s: not a JSON object", ErrActionFile, name)
	}
	_, hasModule := probe["module"]
	_, hasOps := probe["operations"]
	if hasModule && !hasOps {
		return parseBareOperation(name, data)
	}
	a, err := action.ParseAction(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrActionFile, name, err)
	}
	return a, nil
}

// parseBareOperation wraps one operation object into an action.
func parseBareOperation(name string, data []byte) (*action.Action, error) {
	var op action.Operation
	if err := strictjson.Decode(data, &op); err != nil {
		return nil, fmt.Errorf("%w: %s: operation: %s", ErrActionFile, name, jsonErrorAt(name, data, err))
	}
	if op.Module == "" {
		return nil, fmt.Errorf("%w: %s: operation has an empty module", ErrActionFile, name)
	}
	if len(op.Parameters) == 0 || string(op.Parameters) == "null" {
		return nil, fmt.Errorf("%w: %s: operation %s has no parameters", ErrActionFile, name, op.Module)
	}
	base := strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	if base == "" || base == "." || base == string(filepath.Separator) {
		base = op.Module
	}
	return &action.Action{
		Name:          base,
		Operations:    []action.Operation{op},
		SyntaxVersion: action.SyntaxVersion,
	}, nil
}

// jsonErrorAt describes a JSON decoding error with the file name and the
// line and column where it happened, when known.
func jsonErrorAt(name string, data []byte, err error) string {
	if line, col, ok := client.JSONErrorPos(data, err); ok {
		return fmt.Sprintf("%s:%d:%d: %v", name, line, col, err)
	}
	return fmt.Sprintf("%s: %v", name, err)
}
