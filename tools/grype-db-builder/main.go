// grype-db-builder builds a small, real grype vulnerability database (schema v6)
// offline from vunnel-style provider workspaces committed as test fixtures.
//
// It drives the DB build code that ships inside grype itself
// (github.com/anchore/grype/grype/db), so the result is exactly what the pinned
// grype expects; anchore/grype-db (the usual build tool) is not needed.
//
//	grype-db-builder -workspace DIR -out DIR [-timestamp RFC3339] [-relist]
//
// DIR/<provider>/metadata.json is a vunnel provider state whose "listing" points
// at results/listing.xxh64 (lines "<xxh64>  results/<file>.json"). The output
// directory receives vulnerability.db, import.json and vulnerability-db.tar.gz
// (vulnerability.db at the archive root), ready for `grype db import`.
package main

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/afero"

	grypedb "github.com/anchore/grype/grype/db"
	"github.com/anchore/grype/grype/db/provider"
	v6 "github.com/anchore/grype/grype/db/v6"
)

const archiveName = "vulnerability-db.tar.gz"

func main() {
	workspace := flag.String("workspace", "", "directory holding <provider>/metadata.json workspaces (required)")
	out := flag.String("out", "", "output directory for vulnerability.db and "+archiveName+" (required)")
	stamp := flag.String("timestamp", "", "DB build time, RFC3339 (default: now, UTC); grype's age check counts from it")
	relist := flag.Bool("relist", false, "first rewrite each results/listing.xxh64 and its digest in metadata.json (after editing fixtures)")
	flag.Parse()
	log.SetFlags(0)
	if *workspace == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}

	built := time.Now().UTC()
	if *stamp != "" {
		t, err := time.Parse(time.RFC3339, *stamp)
		if err != nil {
			log.Fatalf("bad -timestamp: %v", err)
		}
		built = t.UTC()
	}

	if err := run(*workspace, *out, built.Round(time.Second), *relist); err != nil {
		log.Fatalf("grype-db-builder: %v", err)
	}
}

func run(workspace, out string, built time.Time, relist bool) error {
	metas, err := filepath.Glob(filepath.Join(workspace, "*", "metadata.json"))
	if err != nil || len(metas) == 0 {
		return fmt.Errorf("no %s/*/metadata.json found", workspace)
	}
	sort.Strings(metas)

	var states provider.States
	for _, m := range metas {
		if relist {
			if err := rewriteListing(m); err != nil {
				return err
			}
		}
		st, err := provider.ReadState(m)
		if err != nil {
			return fmt.Errorf("read %s: %w", m, err)
		}
		// ReadState only loads the listing; check every result file against its xxh64 so a
		// fixture edited without -relist fails loudly instead of building stale data.
		if err := st.Verify(); err != nil {
			return fmt.Errorf("%s: %w (rerun with -relist after editing fixtures)", m, err)
		}
		states = append(states, *st)
	}

	// A fresh directory: the v6 writer truncates vulnerability.db, but stale archives would linger.
	if err := os.MkdirAll(out, 0o750); err != nil { // only this user (grype db import) reads it
		return err
	}
	for _, f := range []string{v6.VulnerabilityDBFileName, v6.ImportMetadataFileName, archiveName} {
		_ = os.Remove(filepath.Join(out, f))
	}

	// Hydrate is done below, after the build time is stamped, so import.json's digest
	// matches the final file. (For schema 6, BuildConfig.Timestamp is not used: the
	// writer stamps time.Now() into the db_metadata table itself.)
	if err := grypedb.Build(grypedb.BuildConfig{
		SchemaVersion:       v6.ModelVersion,
		Directory:           out,
		States:              states,
		Timestamp:           built,
		IncludeCPEParts:     []string{"a", "h", "o"},
		InferNVDFixVersions: true,
		BatchSize:           100,
	}); err != nil {
		return fmt.Errorf("build: %w", err)
	}

	if err := setBuildTime(out, built); err != nil {
		return err
	}
	if err := v6.Hydrater()(out); err != nil {
		return fmt.Errorf("hydrate: %w", err)
	}
	if _, err := v6.WriteImportMetadata(afero.NewOsFs(), out, "grype-db-builder"); err != nil {
		return fmt.Errorf("write import metadata: %w", err)
	}
	if err := writeArchive(out, v6.VulnerabilityDBFileName, v6.ImportMetadataFileName); err != nil {
		return fmt.Errorf("archive: %w", err)
	}

	fmt.Printf("built %s (schema v%d.%d.%d, built %s, providers %v)\narchive %s\n",
		filepath.Join(out, v6.VulnerabilityDBFileName), v6.ModelVersion, v6.Revision, v6.Addition,
		built.Format(time.RFC3339), states.Names(), filepath.Join(out, archiveName))
	return nil
}

// setBuildTime overwrites the build timestamp grype checks against
// GRYPE_DB_MAX_ALLOWED_BUILT_AGE (and shows in `grype db status`).
func setBuildTime(dir string, built time.Time) error {
	gdb, err := v6.NewLowLevelDB(filepath.Join(dir, v6.VulnerabilityDBFileName), false, true, false)
	if err != nil {
		return fmt.Errorf("open db: %w", err)
	}
	res := gdb.Model(&v6.DBMetadata{}).Where("true").Update("build_timestamp", built)
	if sqlDB, err := gdb.DB(); err == nil {
		defer sqlDB.Close()
	}
	if res.Error != nil || res.RowsAffected != 1 {
		return fmt.Errorf("set build time: rows=%d err=%v", res.RowsAffected, res.Error)
	}
	return nil
}

// writeArchive packs the named files (flat, at the archive root) into a tar.gz.
func writeArchive(dir string, names ...string) error {
	f, err := os.Create(filepath.Join(dir, archiveName))
	if err != nil {
		return err
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, name := range names {
		if err := addFile(tw, filepath.Join(dir, name), name); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	return f.Close()
}

func addFile(tw *tar.Writer, path, name string) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	info, err := src.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: info.Size(), ModTime: info.ModTime(), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, src)
	return err
}

// rewriteListing regenerates <provider>/results/listing.xxh64 from the result files
// on disk (grype's own helper, vunnel's format) and records its xxh64 in metadata.json.
func rewriteListing(metaPath string) error {
	dir := filepath.Dir(metaPath)
	ws := provider.NewWorkspaceFromExisting(dir)
	if err := ws.EnsureListingFile(); err != nil {
		return fmt.Errorf("relist %s: %w", dir, err)
	}
	digest, err := provider.HashFileXXH64(ws.ListingPath())
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(metaPath)
	if err != nil {
		return err
	}
	var st provider.State
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("parse %s: %w", metaPath, err)
	}
	st.Listing = &provider.File{Path: "results/listing.xxh64", Digest: digest, Algorithm: "xxh64"}
	updated, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(metaPath, append(updated, '\n'), 0o600)
}
