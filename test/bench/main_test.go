package bench

import (
	"testing"

	"github.com/banger-dev/banger/internal/e2etest"
)

func TestMain(m *testing.M) { e2etest.Main(m) }
