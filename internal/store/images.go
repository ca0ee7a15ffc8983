package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/banger-dev/banger/internal/api"
)

const imageCols = `name, distro, suite, rootfs_path, kernel_path, initrd_path, size_bytes, sha256, kernel_version, created_at`

// PutImage inserts an image, or replaces the record of an existing one of
// the same name when replace is true (image build --force).
func (s *Store) PutImage(ctx context.Context, img api.Image, replace bool) (api.Image, error) {
	if img.CreatedAt.IsZero() {
		img.CreatedAt = parseTime(now())
	}
	q := `INSERT INTO images(` + imageCols + `) VALUES (?,?,?,?,?,?,?,?,?,?)`
	if replace {
		// Upsert, not REPLACE: REPLACE deletes the row first, which the
		// foreign key from vms forbids while VMs use the image.
		q += ` ON CONFLICT(name) DO UPDATE SET distro=excluded.distro, suite=excluded.suite,
			rootfs_path=excluded.rootfs_path, kernel_path=excluded.kernel_path, initrd_path=excluded.initrd_path,
			size_bytes=excluded.size_bytes, sha256=excluded.sha256, kernel_version=excluded.kernel_version,
			created_at=excluded.created_at`
	}
	_, err := s.db.ExecContext(ctx, q, img.Name, img.Distro, img.Suite, img.RootfsPath, img.KernelPath, img.InitrdPath,
		img.SizeBytes, img.SHA256, img.KernelVersion, img.CreatedAt.UTC().Format(time.RFC3339Nano))
	if isUnique(err, "images.name") {
		return api.Image{}, newErr(ErrNameTaken, "an image named %q already exists", img.Name)
	}
	if err != nil {
		return api.Image{}, fmt.Errorf("store image %q: %w", img.Name, err)
	}
	return s.GetImage(ctx, img.Name)
}

// GetImage returns one image.
func (s *Store) GetImage(ctx context.Context, name string) (api.Image, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+imageCols+` FROM images WHERE name = ?`, name)
	img, err := scanImage(row)
	if errors.Is(err, sql.ErrNoRows) {
		return api.Image{}, newErr(ErrImageNotFound, "image %q does not exist", name)
	}
	return img, err
}

// ListImages returns all images by name.
func (s *Store) ListImages(ctx context.Context) ([]api.Image, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+imageCols+` FROM images ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	imgs := []api.Image{}
	for rows.Next() {
		img, err := scanImage(rows)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	return imgs, rows.Err()
}

// ImageInUse returns the names of VMs using the image.
func (s *Store) ImageInUse(ctx context.Context, name string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM vms WHERE image = ? ORDER BY name`, name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// DeleteImage removes an image record; refused with ErrImageInUse while a
// VM references it.
func (s *Store) DeleteImage(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM images WHERE name = ?`, name)
	if isForeignKey(err) {
		users, _ := s.ImageInUse(ctx, name)
		return newErr(ErrImageInUse, "image %q is used by VMs %s", name, strings.Join(users, ", "))
	}
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return newErr(ErrImageNotFound, "image %q does not exist", name)
	}
	return nil
}

type scanner interface{ Scan(...any) error }

func scanImage(r scanner) (api.Image, error) {
	var img api.Image
	var created string
	err := r.Scan(&img.Name, &img.Distro, &img.Suite, &img.RootfsPath, &img.KernelPath, &img.InitrdPath,
		&img.SizeBytes, &img.SHA256, &img.KernelVersion, &created)
	img.CreatedAt = parseTime(created)
	return img, err
}
