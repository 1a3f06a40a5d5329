package convert

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sdgo/sdgo/diffusion/model"
)

// absPath is path made absolute and, where it exists, with links resolved.
func absPath(path string) string {
	p, err := filepath.Abs(path)
	if err != nil {
		return filepath.Clean(path)
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	// dst may not exist yet: resolve its folder.
	if r, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
		return filepath.Join(r, filepath.Base(p))
	}
	return p
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	if path == dir {
		return true
	}
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// checkDst checks that dst may be written: its folder exists, it holds none
// of the model's sources, and it does not exist unless force is set, in which
// case what is there must be of the kind written (a diffusers or empty folder,
// or a file). It reports whether dst exists.
func checkDst(m *model.Model, dst string, folder, force bool) (bool, error) {
	if dst == "" {
		return false, fmt.Errorf("convert: no destination given")
	}
	d := absPath(dst)
	sources := []string{m.Path, m.ConfigDir}
	for _, p := range m.Parts() {
		sources = append(sources, p.Files...)
	}
	for _, te := range m.TextEncoders {
		sources = append(sources, te.Tokenizer)
	}
	for _, s := range sources {
		if s != "" && within(absPath(s), d) {
			return false, fmt.Errorf("convert: destination %s holds the model's source %s; write elsewhere", dst, s)
		}
	}
	parent := filepath.Dir(d)
	if st, err := os.Stat(parent); err != nil {
		return false, fmt.Errorf("convert: cannot write %s: %w", dst, err)
	} else if !st.IsDir() {
		return false, fmt.Errorf("convert: cannot write %s: %s is not a folder", dst, parent)
	}
	st, err := os.Lstat(dst)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("convert: %w", err)
	}
	if !force {
		return true, fmt.Errorf("convert: %s %w", dst, ErrExists)
	}
	switch {
	case folder && st.IsDir():
		if _, err := os.Stat(filepath.Join(dst, "model_index.json")); err == nil {
			return true, nil
		}
		ents, err := os.ReadDir(dst)
		if err != nil {
			return true, fmt.Errorf("convert: %w", err)
		}
		if len(ents) > 0 {
			return true, fmt.Errorf("convert: %s exists and is not a diffusers folder (no model_index.json); not replacing it", dst)
		}
		return true, nil
	case folder:
		return true, fmt.Errorf("convert: %s exists and is not a folder; not replacing it with a diffusers folder", dst)
	case st.Mode().IsRegular():
		return true, nil
	default:
		return true, fmt.Errorf("convert: %s exists and is not a file; not replacing it with a single file", dst)
	}
}

// tempName is the prefix of the temporary output beside dst.
func tempName(dst string) string { return filepath.Base(dst) + ".tmp-" }

// commitFolder moves the complete folder tmp to dst; an existing dst (checked
// by checkDst) is moved aside first and removed once tmp is in place.
func commitFolder(tmp, dst string, exists bool, res *Result) error {
	if !exists {
		if _, err := os.Lstat(dst); err == nil {
			return fmt.Errorf("convert: %s %w (it appeared during the conversion)", dst, ErrExists)
		}
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("convert: %w", err)
		}
		return nil
	}
	old, err := os.MkdirTemp(filepath.Dir(dst), filepath.Base(dst)+".old-")
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	if err := os.Remove(old); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	if err := os.Rename(dst, old); err != nil {
		return fmt.Errorf("convert: moving the old %s aside: %w", dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		if rerr := os.Rename(old, dst); rerr != nil {
			return fmt.Errorf("convert: %w (and the old folder is left at %s: %v)", err, old, rerr)
		}
		return fmt.Errorf("convert: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("the replaced folder could not be removed completely and is left at %s: %v", old, err))
	}
	return nil
}

// commitFile moves the complete file tmp to dst: replacing an existing dst
// (checked by checkDst) in one rename, or, when none existed, with a hard link
// that fails rather than overwrite a file that appeared meanwhile.
func commitFile(tmp, dst string, exists bool) error {
	if exists {
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("convert: %w", err)
		}
		return nil
	}
	err := os.Link(tmp, dst)
	switch {
	case err == nil:
		os.Remove(tmp)
		return nil
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("convert: %s %w (it appeared during the conversion)", dst, ErrExists)
	}
	// No hard links on this file system.
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("convert: %s %w (it appeared during the conversion)", dst, ErrExists)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	return nil
}
