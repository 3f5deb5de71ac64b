package devicetest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// NodeModules returns the node_modules folder that scripts/install-test-deps.sh fills
// with `npm ci` from scripts/package.json, found by walking up from the working
// directory to the module's root.
func NodeModules() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			nm := filepath.Join(dir, "scripts", "node_modules")
			if _, err := os.Stat(filepath.Join(nm, "rhea", "package.json")); err != nil {
				return "", fmt.Errorf("rhea is not installed in %s (run scripts/install-test-deps.sh)", nm)
			}
			return nm, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
