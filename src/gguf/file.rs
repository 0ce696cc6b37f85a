//! [`GgufFile`]: owns a GGUF file's bytes, as a read-only memory map or a 64-byte-aligned heap
//! buffer.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Gguf, GgufError};

/// How [`GgufFile::open`] gets the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenOptions {
    /// Memory-map the file (default). `false` reads it into a 64-byte-aligned heap buffer.
    pub mmap: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { mmap: true }
    }
}

/// 64 bytes aligned to 64, the unit of the heap buffer.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Chunk64([u8; 64]);

/// A heap buffer whose first byte is 64-byte aligned: `len` bytes in `ceil(len / 64)` chunks.
struct AlignedBuf {
    chunks: Vec<Chunk64>,
    len: usize,
}

impl AlignedBuf {
    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<Chunk64, u8>(&self.chunks)[..self.len]
    }

    /// A zeroed buffer of `len` bytes, or `None` if the memory cannot be reserved.
    fn zeroed(len: usize) -> Option<AlignedBuf> {
        let n = len.div_ceil(64);
        let mut chunks = Vec::new();
        chunks.try_reserve_exact(n).ok()?;
        chunks.resize(n, Chunk64([0; 64]));
        Some(AlignedBuf { chunks, len })
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut::<Chunk64, u8>(&mut self.chunks)[..self.len]
    }
}

enum Storage {
    Mmap(memmap2::Mmap),
    Heap(AlignedBuf),
}

/// A GGUF file's bytes, owned: a memory map or a 64-byte-aligned heap buffer. Parse it with
/// [`GgufFile::parse`]; the resulting [`Gguf`] and its tensor views borrow from it.
///
/// # Memory maps and files that change
///
/// A memory map shows the file as it is *now*: if another process truncates or rewrites the
/// file while it is mapped, reads of the map can see torn (half-old, half-new) data, or fault
/// with `SIGBUS` when they touch pages past the new end of the file. Rust's aliasing rules do
/// not cover memory another process can change, so this is UB-adjacent; kiln maps the file
/// read-only, never writes through the map, validates the structure once at parse time, and
/// treats the mapped model file as immutable for the life of the `GgufFile`. Do not modify a
/// model file while kiln has it open; if that cannot be guaranteed, open it with
/// `OpenOptions { mmap: false }`, which copies it into memory.
pub struct GgufFile {
    storage: Storage,
    path: Option<PathBuf>,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("mmap", &self.is_mmap())
            .field("len", &self.bytes().len())
            .finish()
    }
}

fn io_err(path: &Path, source: std::io::Error) -> crate::Error {
    crate::Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl GgufFile {
    /// Open `path`: memory-map it (`opts.mmap`, the default) or read it into an aligned heap
    /// buffer. Does not parse; I/O failures come back as [`crate::Error::Io`] naming the path.
    pub fn open(path: impl AsRef<Path>, opts: OpenOptions) -> Result<GgufFile, crate::Error> {
        let path = path.as_ref();
        let mut file = File::open(path).map_err(|e| io_err(path, e))?;
        let len = file.metadata().map_err(|e| io_err(path, e))?.len();
        let len = usize::try_from(len).map_err(|_| {
            io_err(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::FileTooLarge,
                    "file larger than the address space",
                ),
            )
        })?;
        let storage = if opts.mmap && len > 0 {
            // SAFETY: the map is read-only and we never create a mutable view of it. Soundness
            // further requires that no one modifies or truncates the file while it is mapped
            // (otherwise reads may see changing bytes or fault with SIGBUS); kiln documents
            // this requirement on `GgufFile` and treats model files as immutable.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io_err(path, e))?;
            Storage::Mmap(map)
        } else {
            let mut buf = AlignedBuf::zeroed(len).ok_or_else(|| {
                io_err(
                    path,
                    std::io::Error::new(
                        std::io::ErrorKind::OutOfMemory,
                        format!("cannot allocate {len} bytes"),
                    ),
                )
            })?;
            file.read_exact(buf.bytes_mut())
                .map_err(|e| io_err(path, e))?;
            Storage::Heap(buf)
        };
        Ok(GgufFile {
            storage,
            path: Some(path.to_path_buf()),
        })
    }

    /// Own `bytes` (copied into a 64-byte-aligned buffer, so tensor data is as aligned as in a
    /// memory map).
    ///
    /// Aborts if the copy cannot be allocated, like any `Vec` growth.
    pub fn from_bytes(bytes: Vec<u8>) -> GgufFile {
        let mut buf = AlignedBuf {
            chunks: vec![Chunk64([0; 64]); bytes.len().div_ceil(64)],
            len: bytes.len(),
        };
        buf.bytes_mut().copy_from_slice(&bytes);
        GgufFile {
            storage: Storage::Heap(buf),
            path: None,
        }
    }

    /// The file's bytes. The first byte is at least 64-byte aligned (page-aligned for a map).
    pub fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Mmap(m) => m,
            Storage::Heap(b) => b.bytes(),
        }
    }

    /// Parse and validate the bytes (see [`Gguf::parse`]).
    pub fn parse(&self) -> Result<Gguf<'_>, GgufError> {
        Gguf::parse(self.bytes())
    }

    /// Whether the bytes are a memory map.
    pub fn is_mmap(&self) -> bool {
        matches!(self.storage, Storage::Mmap(_))
    }

    /// The path the file was opened from (`None` for [`GgufFile::from_bytes`]).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}
