package fleet

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadConfigFileState(t *testing.T) {
	tests := []struct {
		name     string
		json     string
		wantDisk bool
		wantErr  error
	}{
		{"default memory", `{"n":3}`, false, nil},
		{"memory", `{"state":"memory"}`, false, nil},
		{"disk", `{"state":"disk"}`, true, nil},
		{"unknown state", `{"state":"tape"}`, false, ErrConfig},
		{"unknown key", `{"stat":"disk"}`, false, ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "fleet.json")
			if err := os.WriteFile(path, []byte(tt.json), 0o600); err != nil {
				t.Fatal(err)
			}
			var c Config
			err := LoadConfigFile(&c, path)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr != nil) != (err != nil) {
				t.Fatalf("LoadConfigFile(%s) = %v, want %v", tt.json, err, tt.wantErr)
			}
			if err == nil && c.DiskState != tt.wantDisk {
				t.Errorf("LoadConfigFile(%s): DiskState %v, want %v", tt.json, c.DiskState, tt.wantDisk)
			}
		})
	}
}
