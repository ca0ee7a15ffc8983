// Package store owns banger's SQLite database and all of its SQL: images,
// VMs, and the allocation of VM addresses and vsock CIDs.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite" // registers the "sqlite" driver (pure Go, no cgo)
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Errors callers map to API codes.
var (
	ErrNotFound      = errors.New("not found")
	ErrNameTaken     = errors.New("name already taken")
	ErrImageNotFound = fmt.Errorf("image not found: %w", ErrNotFound) // also ErrNotFound: callers pick the hint
	ErrImageInUse    = errors.New("image in use")
	ErrSubnetFull    = errors.New("subnet full")
	ErrCIDsExhausted = errors.New("vsock CIDs exhausted")
	ErrSchemaTooNew  = errors.New("database from a newer banger")
)

// Store is the database handle. Safe for concurrent use.
type Store struct {
	db *sql.DB
	// newID draws VM ids; tests replace it to force collisions.
	newID func() string
	lists listCache
}

// Open opens (creating if needed) the database at path and applies pending
// migrations.
func Open(path string) (*Store, error) { return openMigrated(path, -1) }

// openMigrated opens path and applies migrations up to version upTo (-1 =
// all); tests use it to build databases at older versions.
func openMigrated(path string, upTo int) (*Store, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// Every write transaction takes the write lock up front (BEGIN IMMEDIATE)
	// so allocation reads and inserts cannot interleave between writers.
	q.Add("_txlock", "immediate")
	if err := makePrivate(path); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s := &Store{db: db, newID: randomID}
	if err := s.migrate(context.Background(), upTo); err != nil {
		db.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	return s, nil
}

// makePrivate creates the database file 0600 (SQLite would make it 0644,
// and gives its -wal and -shm files the database's mode) and tightens files
// an older banger left readable: VM settings are the user's business.
func makePrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open database %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("make database %s private: %w", p, err)
		}
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	s.lists.close()
	return s.db.Close()
}

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationsFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		n, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number", e.Name())
		}
		b, err := migrationsFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: n, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrate applies migrations up to and including version upTo (-1 = all),
// each in its own transaction together with its schema_migrations row.
func (s *Store) migrate(ctx context.Context, upTo int) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	ms, err := migrations()
	if err != nil {
		return err
	}
	// A database a newer banger migrated has tables or columns this binary
	// does not know; writing to it could lose data (e.g. a daemon from an
	// older build after a downgrade). Refuse it.
	var applied sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&applied); err != nil {
		return err
	}
	if known := ms[len(ms)-1].version; int(applied.Int64) > known {
		return fmt.Errorf("%w: database schema version %d is newer than this banger knows (%d): "+
			"run the banger that created it (a newer build), or move the database aside to start afresh",
			ErrSchemaTooNew, applied.Int64, known)
	}
	for _, m := range ms {
		if upTo >= 0 && m.version > upTo {
			break
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
			tx.Rollback()
			return err
		}
		if n > 0 {
			tx.Rollback()
			continue
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)`,
			m.version, m.name, now()); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

// SchemaVersion is the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v)
	return int(v.Int64), err
}

// QuickCheck runs PRAGMA quick_check and returns an error unless SQLite
// reports the database intact.
func (s *Store) QuickCheck(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `PRAGMA quick_check`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return err
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("database damaged: %s", strings.Join(problems, "; "))
	}
	return nil
}

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// randomID is a fresh VM id: 8 hex characters from the kernel's CSPRNG.
func randomID() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand: " + err.Error()) // the kernel's CSPRNG does not fail
	}
	return hex.EncodeToString(b[:])
}

// uniqueColumns reports whether err is SQLite refusing a row for a UNIQUE
// or PRIMARY KEY constraint, and which columns ("vms.tap") it names. The
// kind comes from the driver's extended result code; the columns exist only
// in SQLite's message ("UNIQUE constraint failed: vms.tap"), so that part
// is read from it.
func uniqueColumns(err error) ([]string, bool) {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return nil, false
	}
	if c := se.Code(); c != sqlite3.SQLITE_CONSTRAINT_UNIQUE && c != sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
		return nil, false
	}
	_, list, _ := strings.Cut(se.Error(), " constraint failed: ")
	list, _, _ = strings.Cut(list, " (") // the driver appends " (2067)"
	var cols []string
	for _, c := range strings.Split(list, ",") {
		if c = strings.TrimSpace(c); c != "" {
			cols = append(cols, c)
		}
	}
	return cols, true
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation on
// column ("table.column").
func isUnique(err error, column string) bool {
	cols, ok := uniqueColumns(err)
	return ok && slices.Contains(cols, column)
}

// isForeignKey reports whether err is a foreign key violation: a row
// naming a missing parent (SQLITE_CONSTRAINT_FOREIGNKEY), or deleting a
// parent still referenced, which SQLite enforces for ON DELETE RESTRICT
// with an internal trigger (SQLITE_CONSTRAINT_TRIGGER; the schema has no
// triggers of its own).
func isForeignKey(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code()
	return c == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY || c == sqlite3.SQLITE_CONSTRAINT_TRIGGER
}

// storeError is a sentinel with a message for people: errors.Is matches the
// sentinel, Error() is the specific text.
type storeError struct {
	msg  string
	kind error
}

func (e *storeError) Error() string { return e.msg }
func (e *storeError) Unwrap() error { return e.kind }

func newErr(kind error, format string, args ...any) error {
	return &storeError{msg: fmt.Sprintf(format, args...), kind: kind}
}
