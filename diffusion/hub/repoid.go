package hub

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// DefaultRevision is the revision a repository id without "@REV" names.
const DefaultRevision = "main"

// repoPart is one half of "namespace/name" as the Hub accepts it: word
// characters, '-' and '.', starting and ending with a word character.
var repoPart = regexp.MustCompile(`^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$`)

// commitRe matches a full commit hash, which needs no resolving.
var commitRe = regexp.MustCompile(`^[0-9a-f]{40}$`)

// etagRe matches the ETags the Hub gives: a git blob sha1 (40 hex digits) or an
// LFS sha256 (64 hex digits). Both name blob files, so nothing else is accepted.
var etagRe = regexp.MustCompile(`^(?:[0-9a-f]{40}|[0-9a-f]{64})$`)

// IsRepoID reports whether s names a Hub model repository ("org/name" or
// "org/name@revision") rather than a local path: it is false for anything that
// exists on disk, so a local folder named like a repository wins.
func IsRepoID(s string) bool {
	if s == "" {
		return false
	}
	if _, err := os.Stat(s); err == nil {
		return false
	}
	_, _, err := ParseRepoID(s)
	return err == nil
}

// ParseRepoID splits "org/name[@revision]" into the repository id and the
// revision (DefaultRevision when none is given) and checks both.
func ParseRepoID(s string) (repo, rev string, err error) {
	repo, rev, hasRev := strings.Cut(s, "@")
	if !hasRev {
		rev = DefaultRevision
	}
	if err := checkRepo(repo); err != nil {
		return "", "", err
	}
	if err := checkRevision(rev); err != nil {
		return "", "", fmt.Errorf("hub: %q: %w", s, err)
	}
	return repo, rev, nil
}

// checkRepo checks a repository id ("org/name") as the Hub's validator does:
// two parts, no "--" or "..", not ending in ".git".
func checkRepo(repo string) error {
	ns, name, ok := strings.Cut(repo, "/")
	switch {
	case !ok || strings.Contains(name, "/"):
		return fmt.Errorf("hub: %q is not a repository id: want org/name", repo)
	case !repoPart.MatchString(ns) || !repoPart.MatchString(name):
		return fmt.Errorf("hub: %q is not a repository id: org and name may hold letters, digits, '_', '-' and '.', and begin and end with a letter, digit or '_'", repo)
	case strings.Contains(repo, "--") || strings.Contains(repo, ".."):
		return fmt.Errorf("hub: %q is not a repository id: it may not contain \"--\" or \"..\"", repo)
	case strings.HasSuffix(repo, ".git"):
		return fmt.Errorf("hub: %q is not a repository id: it may not end in .git", repo)
	}
	return nil
}

// checkRevision checks that a revision is usable as a file name under refs/ (a
// branch or tag may contain '/', as in "refs/pr/1").
func checkRevision(rev string) error {
	if rev == "" {
		return errors.New("empty revision")
	}
	if err := checkRelPath(rev); err != nil {
		return fmt.Errorf("revision %q: %w", rev, err)
	}
	return nil
}

// checkRelPath rejects a repository path that could escape the folder it is
// joined to, on POSIX or Windows: absolute paths, drive letters, backslashes,
// empty or "." or ".." segments.
func checkRelPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") ||
		(len(p) >= 2 && p[1] == ':') {
		return errors.New("not a relative path")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New("not a clean relative path")
		}
	}
	return nil
}

// repoFolderName is the cache folder of a model repository, as huggingface_hub
// names it: "models--org--name".
func repoFolderName(repo string) string {
	return "models--" + strings.ReplaceAll(repo, "/", "--")
}
