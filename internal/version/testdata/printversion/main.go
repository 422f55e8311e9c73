// Command printversion prints version.Version, for the version tests.
package main

import (
	"fmt"

	"github.com/migplatform/mig/internal/version"
)

func main() { fmt.Print(version.Version) }
