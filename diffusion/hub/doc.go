// Package hub fetches model repositories from the Hugging Face Hub into the
// cache that huggingface_hub (and so diffusers and transformers) uses, so that
// Python programs and sdgo share the files, and a model can be named
// "org/name[@revision]" wherever a model folder is accepted:
//
//	c, err := hub.NewClientFromEnv()
//	dir, err := c.Snapshot(ctx, "stabilityai/sdxl-turbo", "main", &hub.Options{Variant: "fp16"})
//	// dir is .../models--stabilityai--sdxl-turbo/snapshots/<commit>, a diffusers folder
//
// # The cache
//
// The cache folder is $HF_HUB_CACHE, else $HF_HOME/hub, else
// ~/.cache/huggingface/hub. Each repository has a folder laid out as
// huggingface_hub lays it out:
//
//	models--org--name/
//	    blobs/<etag>                 the contents, named by ETag
//	    blobs/<etag>.incomplete      a download in progress (resumed by the next call)
//	    refs/main                    the commit the branch "main" was at
//	    snapshots/<commit>/unet/...  relative symlinks to ../../../blobs/<etag>
//	    trees/<commit>.json          the commit's file listing (huggingface_hub's tree cache)
//
// An LFS file's ETag is its sha256, any other file's its git blob sha1; every
// download is checked against it before it is renamed into blobs/, and the
// snapshot entry is made only after that, so a complete-looking file is never
// a partial one. Blobs already in the cache are not checked again.
//
// # The Hub's API
//
// A branch or tag is resolved with GET {endpoint}/api/models/{repo}/revision/{rev}
// (a full commit hash needs no resolving); the files are listed with
// GET {endpoint}/api/models/{repo}/tree/{commit}?recursive=true (following
// Link pages) and fetched with GET {endpoint}/{repo}/resolve/{commit}/{path},
// following redirects to storage without the Authorization header, with
// "Range: bytes=N-" to resume. The first response's X-Repo-Commit,
// X-Linked-Etag (or ETag) and X-Linked-Size must agree with the listing.
// Requests that fail with a network error or HTTP 408, 429 or 5xx are retried
// with backoff; a download that stalls for Client.Timeout is dropped and
// resumed.
//
// # Platforms
//
// Where symlinks cannot be made (Windows without Developer Mode), a snapshot
// holds copies of the blobs instead (a newly downloaded blob is moved there,
// as huggingface_hub does). Concurrent downloads of one blob by several
// processes are serialized with flock on .locks/models--org--name/<etag>.lock
// (the lock huggingface_hub takes) on Linux, macOS and the BSDs; elsewhere
// they are not, and the checksum check is what catches a clash.
package hub
