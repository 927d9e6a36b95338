using System.Buffers.Binary;
using System.Text;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Gguf;

namespace EdgeSlm.Models.Tests.Gguf;

public sealed class GgufFileTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "edgeslm-gguf-" + Guid.NewGuid().ToString("N")[..8]);

    public GgufFileTests() => Directory.CreateDirectory(_directory);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void A_model_opened_through_a_symbolic_link_is_read_whole()
    {
        // A link's own size is a few bytes; the file behind it must be what is mapped and checked.
        string path = Write(new GgufWriter().Add("general.name", GgufValue.Of("linked")).AddTensor("t", QuantType.F32, [4], new byte[16]));
        string link = Path.Combine(_directory, "link.gguf");
        File.CreateSymbolicLink(link, path);

        using GgufFile file = GgufFile.Open(link);
        Assert.Equal("linked", file.Metadata["general.name"].Value);
        Assert.Equal(new long[] { 4 }, file.Tensor("t").Dimensions);
    }

    [Fact]
    public void Every_metadata_type_and_tensor_round_trips()
    {
        byte[] q4 = new byte[2 * 18];
        q4[0] = 0x00; q4[1] = 0x3C; // scale 1.0
        for (int i = 2; i < 18; i++) q4[i] = (byte)(i * 17);
        byte[] f32 = new byte[4 * 3];
        BinaryPrimitives.WriteSingleLittleEndian(f32.AsSpan(8), 2.5f);
        var writer = new GgufWriter()
            .Add("u8", new GgufValue(GgufValueType.UInt8, (byte)200))
            .Add("i8", new GgufValue(GgufValueType.Int8, (sbyte)-100))
            .Add("u16", new GgufValue(GgufValueType.UInt16, (ushort)60000))
            .Add("i16", new GgufValue(GgufValueType.Int16, (short)-30000))
            .Add("u32", GgufValue.Of(4000000000u))
            .Add("i32", GgufValue.Of(-2000000000))
            .Add("f32", GgufValue.Of(1.5f))
            .Add("bool", GgufValue.Of(true))
            .Add("string", GgufValue.Of("héllo ▁wörld"))
            .Add("u64", GgufValue.Of(ulong.MaxValue))
            .Add("i64", new GgufValue(GgufValueType.Int64, long.MinValue))
            .Add("f64", new GgufValue(GgufValueType.Float64, Math.PI))
            .Add("strings", GgufValue.Of(["a", "", "ü"]))
            .Add("ints", GgufValue.Of([1, -2, 3]))
            .Add("nested", new GgufValue(GgufValueType.Array, new[] { GgufValue.Of([1, 2]), GgufValue.Of([3]) }, GgufValueType.Array))
            .AddTensor("a.weight", QuantType.Q4_0, [32, 2], q4.Concat(q4).ToArray()[..36])
            .AddTensor("b", QuantType.F32, [3], f32);
        string path = Write(writer);

        using GgufFile file = GgufFile.Open(path);
        Assert.Equal(3u, file.Version);
        Assert.Equal((byte)200, file.Metadata["u8"].Value);
        Assert.Equal((sbyte)-100, file.Metadata["i8"].Value);
        Assert.Equal((ushort)60000, file.Metadata["u16"].Value);
        Assert.Equal((short)-30000, file.Metadata["i16"].Value);
        Assert.Equal(4000000000u, file.Metadata["u32"].Value);
        Assert.Equal(-2000000000, file.Metadata["i32"].Value);
        Assert.Equal(1.5f, file.Metadata["f32"].Value);
        Assert.Equal(true, file.Metadata["bool"].Value);
        Assert.Equal("héllo ▁wörld", file.Metadata["string"].Value);
        Assert.Equal(ulong.MaxValue, file.Metadata["u64"].Value);
        Assert.Equal(long.MinValue, file.Metadata["i64"].Value);
        Assert.Equal(Math.PI, file.Metadata["f64"].Value);
        Assert.Equal(new[] { "a", "", "ü" }, file.Metadata["strings"].AsArray<string>("strings"));
        Assert.Equal(new[] { 1, -2, 3 }, file.Metadata["ints"].AsArray<int>("ints"));
        GgufValue[] nested = file.Metadata["nested"].AsArray<GgufValue>("nested");
        Assert.Equal(new[] { 3 }, nested[1].AsArray<int>("nested[1]"));

        Assert.Equal(2, file.Tensors.Count);
        GgufTensorInfo a = file.Tensor("a.weight");
        Assert.Equal(new long[] { 32, 2 }, a.Dimensions);
        Assert.Equal(QuantType.Q4_0, a.Type);
        Assert.Equal(q4.Concat(q4).ToArray()[..36], file.TensorBytes(a).ToArray());
        GgufTensorInfo b = file.Tensor("b");
        Assert.Equal(0, b.Offset % 32);
        Assert.Equal(0, file.DataOffset % 32);
        Assert.Equal(2.5f, BinaryPrimitives.ReadSingleLittleEndian(file.TensorBytes(b)[8..]));
    }

    public static TheoryData<string, string> HostileFiles() => new()
    {
        // name of the corruption, text the error must contain
        { "empty", "too small" },
        { "magic", "not a GGUF file" },
        { "version", "version 1" },
        { "huge metadata count", "metadata count" },
        { "huge string", "string of" },
        { "duplicate key", "'k' appears twice" },
        { "unknown value type", "unknown value type" },
        { "huge array", "claims" },
        { "bad bool", "bool of value" },
        { "bad utf8", "not valid UTF-8" },
        { "huge tensor count", "tensor count" },
        { "duplicate tensor", "tensor 't' appears twice" },
        { "zero dims", "has 0 dimensions" },
        { "five dims", "has 5 dimensions" },
        { "zero dimension", "dimension 0 of size 0" },
        { "overflowing dimensions", "more elements than fit" },
        { "unknown tensor type", "type 99" },
        { "partial block", "not a multiple of its block size" },
        { "misaligned offset", "not a multiple of the alignment" },
        { "past the end", "runs past the end" },
        { "overlap", "overlap" },
        { "bad alignment", "power of two" },
        { "truncated", "the file ends inside" },
    };

    [Theory]
    [MemberData(nameof(HostileFiles))]
    public void Hostile_files_fail_with_a_message_naming_the_problem(string corruption, string expected)
    {
        byte[] bytes = corruption switch
        {
            "empty" => [],
            "magic" => Header(magic: 0x46554748),
            "version" => Header(version: 1),
            "huge metadata count" => Header(metadataCount: ulong.MaxValue / 2),
            "huge string" => Concat(Header(metadataCount: 1), U64(1UL << 40), new byte[64]),
            "duplicate key" => Concat(Header(metadataCount: 2), Kv("k", 4, U32(1)), Kv("k", 4, U32(2))),
            "unknown value type" => Concat(Header(metadataCount: 1), Kv("k", 77, U32(1))),
            "huge array" => Concat(Header(metadataCount: 1), Kv("k", 9, Concat(U32(5), U64(1UL << 50)))),
            "bad bool" => Concat(Header(metadataCount: 1), Kv("k", 7, [2])),
            "bad utf8" => Concat(Header(metadataCount: 1), Kv("k", 8, Concat(U64(2), [0xC3, 0x28]))),
            "huge tensor count" => Header(tensorCount: 1UL << 40),
            "duplicate tensor" => Tensors(Tensor("t", [32], 0, 0), Tensor("t", [32], 0, 32)),
            "zero dims" => Tensors(Tensor("t", [], 0, 0)),
            "five dims" => Tensors(Tensor("t", [1, 1, 1, 1, 1], 0, 0)),
            "zero dimension" => Tensors(Tensor("t", [0], 0, 0)),
            "overflowing dimensions" => Tensors(Tensor("t", [1L << 40, 1L << 40], 0, 0)),
            "unknown tensor type" => Tensors(Tensor("t", [32], 99, 0)),
            "partial block" => Tensors(Tensor("t", [33], 2, 0)),
            "misaligned offset" => Tensors(Tensor("t", [32], 0, 4)),
            "past the end" => Tensors(Tensor("t", [1024], 0, 0)),
            "overlap" => Tensors(Tensor("a", [16], 0, 0), Tensor("b", [16], 0, 32)),
            "bad alignment" => Concat(Header(metadataCount: 1), Kv("general.alignment", 4, U32(24))),
            "truncated" => Concat(Header(metadataCount: 1), Kv("k", 4, U32(1)))[..^2],
            _ => throw new ArgumentException(corruption),
        };
        string path = Path.Combine(_directory, "hostile.gguf");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<GgufFormatException>(() => GgufFile.Open(path).Dispose());
        Assert.Contains(expected, e.Message);
        Assert.StartsWith(path, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    private string Write(GgufWriter writer)
    {
        string path = Path.Combine(_directory, Guid.NewGuid().ToString("N") + ".gguf");
        writer.WriteTo(path);
        return path;
    }

    private static byte[] Header(uint magic = GgufFile.Magic, uint version = 3, ulong tensorCount = 0, ulong metadataCount = 0) =>
        Concat(U32(magic), U32(version), U64(tensorCount), U64(metadataCount));

    /// <summary>A file with the given tensor entries and 96 bytes of data, after an aligned header.</summary>
    private static byte[] Tensors(params byte[][] entries)
    {
        byte[] head = Concat([Header(tensorCount: (ulong)entries.Length), .. entries]);
        int padding = (32 - head.Length % 32) % 32;
        return Concat(head, new byte[padding], new byte[96]);
    }

    private static byte[] Tensor(string name, long[] dimensions, uint type, ulong offset) =>
        Concat([Str(name), U32((uint)dimensions.Length), .. dimensions.Select(d => U64((ulong)d)), U32(type), U64(offset)]);

    private static byte[] Kv(string key, uint type, byte[] value) => Concat(Str(key), U32(type), value);

    private static byte[] Str(string text) => Concat(U64((ulong)Encoding.UTF8.GetByteCount(text)), Encoding.UTF8.GetBytes(text));

    private static byte[] U32(uint value) => BitConverter.GetBytes(value);

    private static byte[] U64(ulong value) => BitConverter.GetBytes(value);

    private static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();
}
