using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using System.Text;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;

namespace EdgeSlm.Models.Gguf;

// GGUF, version 3 (and 2, which differs only in its meaning of nothing we read), little-endian throughout:
//
//   u32  magic            "GGUF" (0x46554747)
//   u32  version          3
//   u64  tensor_count
//   u64  metadata_count
//   metadata_count times:
//        string key       (u64 byte length, UTF-8 bytes, no terminator)
//        u32    type      gguf_type: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool, 8 string,
//                                    9 array, 10 u64, 11 i64, 12 f64
//        value            scalars as themselves; array = u32 element type, u64 count, elements
//   tensor_count times:
//        string name
//        u32    n_dims    1..4
//        u64    ne[n_dims] elements per dimension, ne[0] the contiguous one (a matrix of `rows` rows of
//                         `cols` values has ne = [cols, rows])
//        u32    type      ggml_type (0 f32, 1 f16, 2 q4_0, 8 q8_0, ...)
//        u64    offset    from the start of the data section; a multiple of the alignment
//   padding to `general.alignment` (u32 metadata, default 32)
//   data section: tensor data, each tensor padded to the alignment
//
// The file is memory-mapped (or read into private memory, Read) and treated as hostile (as ggml's gguf.cpp
// does): every count is checked against the bytes left before anything is allocated, strings against their
// length, names for duplicates, dimensions for overflow, types against the ones we know, offsets for alignment,
// bounds and overlap. Every failure is a GgufFormatException naming the key or tensor.

/// <summary>A tensor's entry in the file: shape, type and where its bytes are.</summary>
/// <param name="Dimensions">ne[0], ne[1], ...: ne[0] is the contiguous dimension.</param>
public sealed record GgufTensorInfo(string Name, long[] Dimensions, QuantType Type, long Offset, long ByteSize)
{
    public long ElementCount => Dimensions.Aggregate(1L, (a, b) => a * b);

    /// <summary>Rows of a 2-D tensor (ne[1]), 1 for a vector.</summary>
    public long Rows => Dimensions.Length > 1 ? Dimensions[1] : 1;

    /// <summary>Elements per row (ne[0]).</summary>
    public long Columns => Dimensions[0];

    public string Shape => string.Join(" x ", Dimensions);
}

/// <summary>A memory-mapped GGUF file: metadata, tensor table and zero-copy tensor views.</summary>
public sealed unsafe partial class GgufFile : IDisposable
{
    public const uint Magic = 0x46554747;
    public const uint DefaultAlignment = 32;
    public const string AlignmentKey = "general.alignment";

    private const int MaxDimensions = 4;
    private const long MaxStringBytes = 1L << 30;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly bool _ownsMemory; // _base is a private copy (Read, FromBytes), freed on Dispose
    private byte* _base;
    private readonly Dictionary<string, GgufTensorInfo> _tensorsByName;

    private GgufFile(string path, MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte* basePointer, long length)
    {
        Path = path;
        _map = map;
        _view = view;
        _ownsMemory = map is null;
        _base = basePointer;
        Length = length;
        var reader = new Reader(basePointer, length);
        try
        {
            (Version, Metadata, Tensors, DataOffset, Alignment) = Parse(ref reader);
        }
        catch
        {
            Dispose();
            throw;
        }
        _tensorsByName = Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    public string Path { get; }
    public long Length { get; }
    public uint Version { get; }
    public uint Alignment { get; }
    public long DataOffset { get; }
    public IReadOnlyDictionary<string, GgufValue> Metadata { get; }
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    /// <summary>Maps and validates <paramref name="path"/>.</summary>
    /// <exception cref="GgufFormatException">The file is not a valid GGUF file; the message says why.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static GgufFile Open(string path)
    {
        // The length of the file opened, not of the path: FileInfo.Length of a symbolic link is the link's own.
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        long length = stream.Length;
        if (length < 24)
        {
            stream.Dispose();
            throw new GgufFormatException($"{path}: {length} bytes is too small for a GGUF header (24 bytes)");
        }
        MemoryMappedFile map;
        try
        {
            map = MemoryMappedFile.CreateFromFile(stream, mapName: null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        MemoryMappedViewAccessor view;
        try
        {
            view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
        }
        catch
        {
            map.Dispose();
            throw;
        }
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        pointer += view.PointerOffset;
        try
        {
            return new GgufFile(path, map, view, pointer, length);
        }
        catch (GgufFormatException e)
        {
            throw new GgufFormatException($"{path}: {e.Message}");
        }
    }

    /// <summary>
    /// Reads and validates <paramref name="path"/> into private memory instead of mapping it: the file can then be
    /// replaced, overwritten or truncated while this instance is in use (a mapping would show the new bytes, or
    /// fault past a shortened end).
    /// </summary>
    /// <exception cref="GgufFormatException">The file is not a valid GGUF file; the message says why.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static GgufFile Read(string path)
    {
        using FileStream stream = new(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 1);
        long length = stream.Length;
        if (length < 24)
        {
            throw new GgufFormatException($"{path}: {length} bytes is too small for a GGUF header (24 bytes)");
        }
        byte* memory = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)length, 64);
        try
        {
            long done = 0;
            while (done < length)
            {
                int read = stream.Read(new Span<byte>(memory + done, (int)Math.Min(length - done, 1 << 30)));
                if (read == 0)
                {
                    throw new GgufFormatException($"{path}: the file shrank from {length} to {done} bytes while it was read");
                }
                done += read;
            }
        }
        catch
        {
            System.Runtime.InteropServices.NativeMemory.AlignedFree(memory);
            throw;
        }
        return FromOwnedMemory(path, memory, length);
    }

    /// <summary>Validates a GGUF image held in memory (a conversion that could not be written to disk); <paramref name="path"/> names it.</summary>
    public static GgufFile FromBytes(ReadOnlySpan<byte> bytes, string path)
    {
        if (bytes.Length < 24)
        {
            throw new GgufFormatException($"{path}: {bytes.Length} bytes is too small for a GGUF header (24 bytes)");
        }
        byte* memory = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)bytes.Length, 64);
        bytes.CopyTo(new Span<byte>(memory, bytes.Length));
        return FromOwnedMemory(path, memory, bytes.Length);
    }

    private static GgufFile FromOwnedMemory(string path, byte* memory, long length)
    {
        try
        {
            return new GgufFile(path, null, null, memory, length); // frees the memory itself if the bytes are invalid
        }
        catch (GgufFormatException e)
        {
            throw new GgufFormatException($"{path}: {e.Message}");
        }
    }

    /// <summary>Whether the bytes are a private copy (<see cref="Read"/>, <see cref="FromBytes"/>) rather than a mapping of the file.</summary>
    public bool InMemory => _ownsMemory;

    /// <summary>The header, metadata and tensor table: every byte before the tensor data.</summary>
    public ReadOnlySpan<byte> HeaderBytes
    {
        get
        {
            ObjectDisposedException.ThrowIf(_base == null, this);
            return new ReadOnlySpan<byte>(_base, (int)Math.Min(DataOffset, int.MaxValue));
        }
    }

    public bool TryGetTensor(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out GgufTensorInfo? tensor) =>
        _tensorsByName.TryGetValue(name, out tensor);

    public GgufTensorInfo Tensor(string name) =>
        _tensorsByName.TryGetValue(name, out GgufTensorInfo? tensor) ? tensor : throw new GgufFormatException($"{Path}: tensor '{name}' is missing");

    /// <summary>The tensor's bytes in the mapped file, valid until this file is disposed.</summary>
    public byte* TensorPointer(GgufTensorInfo tensor)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        return _base + DataOffset + tensor.Offset;
    }

    /// <summary>
    /// Says the tensor's bytes will not be read again (a loader converted them into memory of its own), so the
    /// mapped pages they occupy can leave this process's resident set: on Linux, madvise(MADV_DONTNEED) on the
    /// whole pages inside the tensor (they are clean file pages: the page cache keeps them, and a later read
    /// maps them again). Does nothing for a private copy (<see cref="InMemory"/>) or on other systems.
    /// </summary>
    public void ReleasePages(GgufTensorInfo tensor)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        if (_ownsMemory || !OperatingSystem.IsLinux())
        {
            return;
        }
        long page = Environment.SystemPageSize;
        long start = (long)TensorPointer(tensor);
        long first = (start + page - 1) / page * page;
        long end = (start + tensor.ByteSize) / page * page;
        if (end > first && s_madviseAvailable)
        {
            // A failure (an old kernel, an unusual mapping, a C library without madvise) only leaves the pages
            // resident: nothing to report.
            try
            {
                _ = Madvise((nint)first, (nuint)(end - first), MadviseDontNeed);
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                s_madviseAvailable = false;
            }
        }
    }

    private static bool s_madviseAvailable = true;
    private const int MadviseDontNeed = 4; // MADV_DONTNEED, the same value on every Linux architecture

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(nint address, nuint length, int advice);

    public ReadOnlySpan<byte> TensorBytes(GgufTensorInfo tensor) =>
        tensor.ByteSize <= int.MaxValue
            ? new ReadOnlySpan<byte>(TensorPointer(tensor), (int)tensor.ByteSize)
            : throw new NotSupportedException($"tensor '{tensor.Name}' is larger than 2 GiB; use TensorPointer");

    public GgufValue? Get(string key) => Metadata.TryGetValue(key, out GgufValue? value) ? value : null;

    public GgufValue Require(string key) =>
        Metadata.TryGetValue(key, out GgufValue? value) ? value : throw new GgufFormatException($"{Path}: metadata '{key}' is missing");

    private static (uint Version, Dictionary<string, GgufValue> Metadata, List<GgufTensorInfo> Tensors, long DataOffset, uint Alignment) Parse(ref Reader reader)
    {
        uint magic = reader.U32("magic");
        if (magic != Magic)
        {
            throw new GgufFormatException($"not a GGUF file (magic 0x{magic:X8}, expected 0x{Magic:X8} \"GGUF\")");
        }
        uint version = reader.U32("version");
        if (version is not (2 or 3))
        {
            throw new GgufFormatException($"GGUF version {version} is not supported (2 and 3 are)");
        }
        ulong tensorCount = reader.U64("tensor count");
        ulong metadataCount = reader.U64("metadata count");
        // The smallest metadata entry is 13 bytes (empty key, type, one byte); the smallest tensor entry 28.
        if (metadataCount > (ulong)reader.Remaining / 13)
        {
            throw new GgufFormatException($"metadata count {metadataCount} cannot fit in the {reader.Remaining} bytes left");
        }

        var metadata = new Dictionary<string, GgufValue>((int)metadataCount, StringComparer.Ordinal);
        for (ulong i = 0; i < metadataCount; i++)
        {
            string key = reader.String($"key of metadata entry {i}");
            if (key.Length == 0)
            {
                throw new GgufFormatException($"metadata entry {i} has an empty key");
            }
            var type = (GgufValueType)reader.U32($"type of metadata '{key}'");
            GgufValue value = reader.Value(type, key, depth: 0);
            if (!metadata.TryAdd(key, value))
            {
                throw new GgufFormatException($"metadata '{key}' appears twice");
            }
        }

        uint alignment = DefaultAlignment;
        if (metadata.TryGetValue(AlignmentKey, out GgufValue? alignmentValue))
        {
            if (alignmentValue.Value is not uint a || a == 0 || (a & (a - 1)) != 0)
            {
                throw new GgufFormatException($"metadata '{AlignmentKey}' must be a u32 power of two, not {alignmentValue.Display()}");
            }
            alignment = a;
        }

        if (tensorCount > (ulong)reader.Remaining / 28)
        {
            throw new GgufFormatException($"tensor count {tensorCount} cannot fit in the {reader.Remaining} bytes left");
        }
        var tensors = new List<GgufTensorInfo>((int)tensorCount);
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (ulong i = 0; i < tensorCount; i++)
        {
            string name = reader.String($"name of tensor {i}");
            if (!names.Add(name))
            {
                throw new GgufFormatException($"tensor '{name}' appears twice");
            }
            uint dimensionCount = reader.U32($"dimension count of tensor '{name}'");
            if (dimensionCount is < 1 or > MaxDimensions)
            {
                throw new GgufFormatException($"tensor '{name}' has {dimensionCount} dimensions (1 to {MaxDimensions} are allowed)");
            }
            var dimensions = new long[dimensionCount];
            long elements = 1;
            for (int d = 0; d < dimensionCount; d++)
            {
                ulong size = reader.U64($"dimension {d} of tensor '{name}'");
                if (size == 0 || size > long.MaxValue)
                {
                    throw new GgufFormatException($"tensor '{name}' has dimension {d} of size {size}");
                }
                dimensions[d] = (long)size;
                if (elements > long.MaxValue / (long)size)
                {
                    throw new GgufFormatException($"tensor '{name}' has more elements than fit in 63 bits ({string.Join(" x ", dimensions.Take(d + 1))})");
                }
                elements *= (long)size;
            }
            uint typeId = reader.U32($"type of tensor '{name}'");
            if (!QuantTypeTraits.TryGet((QuantType)typeId, out QuantTypeTraits? traits))
            {
                throw new GgufFormatException($"tensor '{name}' has type {typeId}, which EdgeSlm does not support (supported: {string.Join(", ", QuantTypeTraits.All.Select(t => $"{t.Name}={(int)t.Type}"))})");
            }
            if (dimensions[0] % traits.BlockElements != 0)
            {
                throw new GgufFormatException($"tensor '{name}' ({traits.Name}) has rows of {dimensions[0]} elements, not a multiple of its block size {traits.BlockElements}");
            }
            ulong offset = reader.U64($"offset of tensor '{name}'");
            if (offset % alignment != 0)
            {
                throw new GgufFormatException($"tensor '{name}' starts at offset {offset}, not a multiple of the alignment {alignment}");
            }
            // Compared before multiplying: 2^62 f32 elements are 2^64 bytes, which wraps to 0 in a long.
            long blocks = elements / traits.BlockElements;
            if (blocks > reader.Length / traits.BlockBytes)
            {
                throw new GgufFormatException($"tensor '{name}' ({string.Join(" x ", dimensions)} {traits.Name}) runs past the end of the file: it needs more bytes than the whole file has ({reader.Length})");
            }
            long byteSize = blocks * traits.BlockBytes;
            tensors.Add(new GgufTensorInfo(name, dimensions, traits.Type, (long)Math.Min(offset, long.MaxValue), byteSize));
        }

        long dataOffset = AlignUp(reader.Position, alignment);
        long dataBytes = reader.Length - dataOffset;
        foreach (GgufTensorInfo tensor in tensors)
        {
            if (tensor.Offset > dataBytes || tensor.ByteSize > dataBytes - tensor.Offset)
            {
                throw new GgufFormatException($"tensor '{tensor.Name}' ({tensor.ByteSize} bytes at data offset {tensor.Offset}) runs past the end of the file ({Math.Max(0, dataBytes)} bytes of data)");
            }
        }
        GgufTensorInfo? previous = null;
        foreach (GgufTensorInfo tensor in tensors.OrderBy(t => t.Offset))
        {
            if (previous is not null && tensor.Offset < previous.Offset + previous.ByteSize)
            {
                throw new GgufFormatException($"tensors '{previous.Name}' and '{tensor.Name}' overlap");
            }
            previous = tensor;
        }
        return (version, metadata, tensors, dataOffset, alignment);
    }

    internal static long AlignUp(long value, uint alignment) => (value + alignment - 1) / alignment * alignment;

    public void Dispose()
    {
        if (_base != null)
        {
            if (_ownsMemory)
            {
                System.Runtime.InteropServices.NativeMemory.AlignedFree(_base);
            }
            else
            {
                _view?.SafeMemoryMappedViewHandle.ReleasePointer();
            }
            _base = null;
        }
        _view?.Dispose();
        _map?.Dispose();
    }

    /// <summary>A bounds-checked little-endian cursor over the mapped bytes.</summary>
    private ref struct Reader(byte* start, long length)
    {
        private const int MaxArrayNesting = 2;

        public readonly long Length = length;
        public long Position;

        public readonly long Remaining => Length - Position;

        private byte* Take(long count, string what)
        {
            if (count < 0 || count > Remaining)
            {
                throw new GgufFormatException($"the file ends inside {what} (at byte {Position}: {count} bytes needed, {Remaining} left)");
            }
            byte* at = start + Position;
            Position += count;
            return at;
        }

        public uint U32(string what) => Unsafe.ReadUnaligned<uint>(Take(4, what));

        public ulong U64(string what) => Unsafe.ReadUnaligned<ulong>(Take(8, what));

        public string String(string what)
        {
            ulong byteCount = U64(what);
            if (byteCount > (ulong)Remaining || byteCount > MaxStringBytes)
            {
                throw new GgufFormatException($"{what}: a string of {byteCount} bytes is longer than the {Remaining} bytes left");
            }
            byte* bytes = Take((long)byteCount, what);
            try
            {
                return Strict.GetString(bytes, (int)byteCount);
            }
            catch (DecoderFallbackException)
            {
                throw new GgufFormatException($"{what} is not valid UTF-8 (at byte {Position - (long)byteCount})");
            }
        }

        public GgufValue Value(GgufValueType type, string key, int depth)
        {
            string what = $"metadata '{key}'";
            switch (type)
            {
                case GgufValueType.UInt8: return new(type, *Take(1, what));
                case GgufValueType.Int8: return new(type, (sbyte)*Take(1, what));
                case GgufValueType.UInt16: return new(type, Unsafe.ReadUnaligned<ushort>(Take(2, what)));
                case GgufValueType.Int16: return new(type, Unsafe.ReadUnaligned<short>(Take(2, what)));
                case GgufValueType.UInt32: return new(type, Unsafe.ReadUnaligned<uint>(Take(4, what)));
                case GgufValueType.Int32: return new(type, Unsafe.ReadUnaligned<int>(Take(4, what)));
                case GgufValueType.Float32: return new(type, Unsafe.ReadUnaligned<float>(Take(4, what)));
                case GgufValueType.UInt64: return new(type, Unsafe.ReadUnaligned<ulong>(Take(8, what)));
                case GgufValueType.Int64: return new(type, Unsafe.ReadUnaligned<long>(Take(8, what)));
                case GgufValueType.Float64: return new(type, Unsafe.ReadUnaligned<double>(Take(8, what)));
                case GgufValueType.Bool:
                    byte b = *Take(1, what);
                    return b <= 1 ? new(type, b == 1) : throw new GgufFormatException($"{what} is a bool of value {b} (0 or 1 expected)");
                case GgufValueType.String: return new(type, String(what));
                case GgufValueType.Array: return Array(key, depth);
                default: throw new GgufFormatException($"{what} has unknown value type {(uint)type}");
            }
        }

        private GgufValue Array(string key, int depth)
        {
            if (depth >= MaxArrayNesting)
            {
                throw new GgufFormatException($"metadata '{key}' nests arrays more than {MaxArrayNesting} deep");
            }
            var elementType = (GgufValueType)U32($"element type of metadata '{key}'");
            ulong count = U64($"element count of metadata '{key}'");
            long minimumElementBytes = elementType switch
            {
                GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
                GgufValueType.UInt16 or GgufValueType.Int16 => 2,
                GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
                GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 or GgufValueType.String => 8,
                GgufValueType.Array => 12,
                _ => throw new GgufFormatException($"metadata '{key}' is an array of unknown type {(uint)elementType}"),
            };
            if (count > (ulong)(Remaining / minimumElementBytes))
            {
                throw new GgufFormatException($"metadata '{key}' claims {count} elements, more than the {Remaining} bytes left can hold");
            }
            int n = (int)count;
            return elementType switch
            {
                GgufValueType.UInt8 => new(GgufValueType.Array, Copy<byte>(n, key), elementType),
                GgufValueType.Int8 => new(GgufValueType.Array, Copy<sbyte>(n, key), elementType),
                GgufValueType.UInt16 => new(GgufValueType.Array, Copy<ushort>(n, key), elementType),
                GgufValueType.Int16 => new(GgufValueType.Array, Copy<short>(n, key), elementType),
                GgufValueType.UInt32 => new(GgufValueType.Array, Copy<uint>(n, key), elementType),
                GgufValueType.Int32 => new(GgufValueType.Array, Copy<int>(n, key), elementType),
                GgufValueType.Float32 => new(GgufValueType.Array, Copy<float>(n, key), elementType),
                GgufValueType.UInt64 => new(GgufValueType.Array, Copy<ulong>(n, key), elementType),
                GgufValueType.Int64 => new(GgufValueType.Array, Copy<long>(n, key), elementType),
                GgufValueType.Float64 => new(GgufValueType.Array, Copy<double>(n, key), elementType),
                GgufValueType.Bool => new(GgufValueType.Array, Bools(n, key), elementType),
                GgufValueType.String => new(GgufValueType.Array, Strings(n, key), elementType),
                _ => new(GgufValueType.Array, Nested(n, key, depth), elementType),
            };
        }

        private T[] Copy<T>(int count, string key) where T : unmanaged
        {
            byte* bytes = Take((long)count * sizeof(T), $"metadata '{key}'");
            var result = new T[count];
            new ReadOnlySpan<byte>(bytes, count * sizeof(T)).CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(result.AsSpan()));
            return result;
        }

        private bool[] Bools(int count, string key)
        {
            byte[] raw = Copy<byte>(count, key);
            var result = new bool[count];
            for (int i = 0; i < count; i++)
            {
                result[i] = raw[i] switch
                {
                    0 => false,
                    1 => true,
                    _ => throw new GgufFormatException($"metadata '{key}' element {i} is a bool of value {raw[i]}"),
                };
            }
            return result;
        }

        private string[] Strings(int count, string key)
        {
            var result = new string[count];
            for (int i = 0; i < count; i++)
            {
                result[i] = String($"element {i} of metadata '{key}'");
            }
            return result;
        }

        private GgufValue[] Nested(int count, string key, int depth)
        {
            var result = new GgufValue[count];
            for (int i = 0; i < count; i++)
            {
                result[i] = Array($"{key}[{i}]", depth + 1);
            }
            return result;
        }
    }

    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
}
