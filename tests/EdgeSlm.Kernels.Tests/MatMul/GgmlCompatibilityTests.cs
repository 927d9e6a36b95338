using System.Runtime.InteropServices;
using System.Security.Cryptography;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.MatMul;
using EdgeSlm.Kernels.Quantization;

namespace EdgeSlm.Kernels.Tests.MatMul;

/// <summary>
/// Our reference quantizer against llama.cpp's own: <c>ggml_quantize_chunk</c> in the libggml-base.so that the
/// LLamaSharp.Backend.Cpu package ships, for x64 and arm64 (the test project copies both into ggml/). Model files
/// we write must be byte-identical to the ones llama.cpp writes.
/// </summary>
/// <remarks>
/// llama.cpp's arm64 build fuses <c>x * id + 8.5f</c> in <c>quantize_row_q4_0_ref</c> into one FMA (GCC contracts
/// by default), its x64 build rounds the product first, as we do; a Q4_0 quant differs where x·id + 8.5 lies within
/// a rounding of an integer (exact ties; none in our random data). We write llama.cpp's x64 bytes everywhere. On
/// arm64 every such difference must be exactly the fused rounding, and <see cref="Edge_blocks_quantize_to_llama_cpp_x64_bytes_on_every_platform"/>
/// pins our bytes to the x64 ones.
/// </remarks>
public sealed unsafe class GgmlCompatibilityTests
{
    public static TheoryData<QuantType, int> TypesAndSeeds()
    {
        var data = new TheoryData<QuantType, int>();
        foreach (QuantType type in new[] { QuantType.Q4_0, QuantType.Q8_0 })
        {
            foreach (int seed in new[] { 1, 2, 3, 4 })
            {
                data.Add(type, seed);
            }
        }
        return data;
    }

    public static TheoryData<QuantType> Types => new() { QuantType.Q4_0, QuantType.Q8_0 };

    [Theory]
    [MemberData(nameof(TypesAndSeeds))]
    public void Gaussian_rows_quantize_byte_identical_to_ggml(QuantType type, int seed)
    {
        const int rows = 129, columns = 1024;
        float[] values = TestData.Gaussian(rows * columns, seed, scale: 0.02f * seed);
        AssertSameAsGgml(type, values, rows, columns);

        // The matrix we multiply holds the same bytes.
        using var matrix = QuantizedMatrix.Quantize(type, values, rows, columns);
        Assert.True(QuantizeWithOurs(type, values, rows, columns).AsSpan().SequenceEqual(matrix.Bytes), "QuantizedMatrix.Quantize differs from ReferenceQuantizer");
    }

    [Theory]
    [MemberData(nameof(TypesAndSeeds))]
    public void Mixed_blocks_quantize_byte_identical_to_ggml(QuantType type, int seed)
    {
        // Zero blocks, 1e-6 blocks (fp16-subnormal scales), 3e4 blocks (scales in the thousands), ±50 outliers.
        const int rows = 96, columns = 1536;
        AssertSameAsGgml(type, TestData.Mixed(rows * columns, seed + 10), rows, columns);
    }

    [Theory]
    [MemberData(nameof(TypesAndSeeds))]
    public void Blocks_of_every_magnitude_quantize_byte_identical_to_ggml(QuantType type, int seed)
    {
        // Each block scaled by 2^e, e uniform in [-100, 100]: fp16 scales that are subnormal, that flush to
        // zero, and that overflow to infinity, and float products far from 1.
        const int rows = 64, columns = 512;
        float[] values = TestData.Gaussian(rows * columns, seed + 20);
        var random = new Random(seed + 20);
        for (int b = 0; b < values.Length / 32; b++)
        {
            float scale = MathF.ScaleB(1f, random.Next(-100, 101));
            foreach (ref float v in values.AsSpan(b * 32, 32)) v *= scale;
        }
        AssertSameAsGgml(type, values, rows, columns);
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Hand_made_edge_blocks_quantize_byte_identical_to_ggml(QuantType type)
    {
        List<float[]> blocks = EdgeBlocks();
        float[] values = blocks.SelectMany(b => b).ToArray();
        AssertSameAsGgml(type, values, rows: blocks.Count, columns: 32);
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Edge_blocks_quantize_to_llama_cpp_x64_bytes_on_every_platform(QuantType type)
    {
        // SHA-256 of ggml_quantize_chunk's output for EdgeBlocks() from LLamaSharp.Backend.Cpu 0.30.0's x64 libggml-base.so.
        string expected = type == QuantType.Q4_0 ? Q4_0EdgeBlocksSha256 : Q8_0EdgeBlocksSha256;
        float[] values = EdgeBlocks().SelectMany(b => b).ToArray();
        Assert.Equal(expected, Convert.ToHexString(SHA256.HashData(QuantizeWithOurs(type, values, values.Length / 32, 32))));
        if (RuntimeInformation.ProcessArchitecture == Architecture.X64)
        {
            Assert.Equal(expected, Convert.ToHexString(SHA256.HashData(GgmlBase.Quantize(type, values, values.Length / 32, 32))));
        }
    }

    [Fact]
    public void Ggml_library_is_the_one_for_this_process_architecture()
    {
        // Guards the loader: a wrong or missing library must fail loudly, never skip.
        Assert.EndsWith(Path.Combine("ggml", GgmlBase.RuntimeFolder, "libggml-base.so"), GgmlBase.LibraryPath);
        Assert.True(File.Exists(GgmlBase.LibraryPath), $"{GgmlBase.LibraryPath} is missing");
        byte[] zeros = GgmlBase.Quantize(QuantType.Q8_0, new float[32], 1, 32);
        Assert.Equal(new byte[34], zeros);
    }

    /// <summary>One 32-element row per case; each case names what it covers.</summary>
    private static List<float[]> EdgeBlocks()
    {
        var blocks = new List<float[]>();
        float[] Ramp(float step, float offset = 0f) => Enumerable.Range(0, 32).Select(i => (i - 16) * step + offset).ToArray();

        blocks.Add(new float[32]);                                           // all zero
        blocks.Add(Ramp(-0f));                                               // negative zeros
        blocks.Add(Ramp(1e-7f));                                             // fp16-subnormal scale
        blocks.Add(Ramp(3e-9f));                                             // scale rounds to fp16 zero, quants do not
        blocks.Add(Ramp(1e-30f));                                            // tiny but 1/d still finite
        blocks.Add(Ramp(1f / 16));                                           // exact steps
        blocks.Add(Ramp(1000f));                                             // Q4_0 scale 2000: normal fp16
        blocks.Add(Ramp(5e4f));                                              // scales past the fp16 maximum (65504): infinity
        blocks.Add(Ramp(1e36f));                                             // near float's maximum
        blocks.Add(Enumerable.Repeat(3.3f, 32).ToArray());                   // constant positive
        blocks.Add(Enumerable.Repeat(-3.3f, 32).ToArray());                  // constant negative

        // The element of largest magnitude is negative, positive, or both with equal magnitude (the first wins).
        float[] negativeMax = Ramp(0.1f); negativeMax[7] = -9.75f; blocks.Add(negativeMax);
        float[] positiveMax = Ramp(0.1f); positiveMax[30] = 9.75f; blocks.Add(positiveMax);
        float[] plusFirst = Ramp(0.1f); plusFirst[3] = 5f; plusFirst[20] = -5f; blocks.Add(plusFirst);
        float[] minusFirst = Ramp(0.1f); minusFirst[3] = -5f; minusFirst[20] = 5f; blocks.Add(minusFirst);

        // Rounding ties. Q4_0 with max = -8 (d = 1) or +8 (d = -1): x·id + 8.5 lands exactly on integers, and -max
        // maps to 16, which is clamped to 15. Q8_0 with max|x| = 127 (d = 1) or 63.5 (d = 0.5): x·id lands on halves,
        // which roundf takes away from zero.
        float[] q4Ties = Enumerable.Range(0, 32).Select(i => i / 2f - 8f).ToArray(); q4Ties[0] = -8f; q4Ties[31] = 8f; blocks.Add(q4Ties);
        blocks.Add(q4Ties.Select(v => -v).ToArray());
        float[] q4HalfTies = Enumerable.Range(0, 32).Select(i => (i - 16) / 2f + 0.25f).ToArray(); q4HalfTies[5] = -8f; blocks.Add(q4HalfTies);
        float[] q8Ties = Enumerable.Range(0, 32).Select(i => (i - 16) * 7.5f + 0.5f).ToArray(); q8Ties[0] = 127f; blocks.Add(q8Ties);
        blocks.Add(q8Ties.Select(v => -v).ToArray());
        float[] q8QuarterTies = Enumerable.Range(0, 32).Select(i => (i - 16) * 3.75f + 0.25f).ToArray(); q8QuarterTies[9] = -63.5f; blocks.Add(q8QuarterTies);

        // Lone outliers: everything else quantizes to the middle.
        float[] outlier = Ramp(1e-3f); outlier[16] = 1e4f; blocks.Add(outlier);
        float[] negativeOutlier = Ramp(1e-3f); negativeOutlier[0] = -1e4f; blocks.Add(negativeOutlier);
        return blocks;
    }

    private const string Q4_0EdgeBlocksSha256 = "68EDADDB3C48C25F307EFAD2B5ABFFA5BD17F55ED996A0FB16065E447DE74DA5";
    private const string Q8_0EdgeBlocksSha256 = "553A32B7352B285E7965265BC527398266B3053637B35D0B779AFDBEDE463355";

    private static bool GgmlFusesQ4_0MultiplyAdd => RuntimeInformation.ProcessArchitecture == Architecture.Arm64;

    private static void AssertSameAsGgml(QuantType type, float[] values, int rows, int columns)
    {
        byte[] expected = GgmlBase.Quantize(type, values, rows, columns);
        byte[] actual = QuantizeWithOurs(type, values, rows, columns);
        if (actual.AsSpan().SequenceEqual(expected))
        {
            return;
        }

        QuantTypeTraits traits = QuantTypeTraits.Of(type);
        byte[]? fused = type == QuantType.Q4_0 && GgmlFusesQ4_0MultiplyAdd ? QuantizeQ4_0WithFusedMultiplyAdd(values) : null;
        int differing = 0, first = -1;
        for (int b = 0; b < actual.Length / traits.BlockBytes; b++)
        {
            Range block = (b * traits.BlockBytes)..((b + 1) * traits.BlockBytes);
            bool same = actual.AsSpan(block).SequenceEqual(expected.AsSpan(block));
            bool explainedByFusedRounding = fused is not null && fused.AsSpan(block).SequenceEqual(expected.AsSpan(block));
            if (!same && !explainedByFusedRounding)
            {
                differing++;
                first = first < 0 ? b : first;
            }
        }
        if (differing == 0)
        {
            return;
        }
        Assert.Fail(
            $"{traits.Name}: {differing} of {actual.Length / traits.BlockBytes} blocks differ from ggml_quantize_chunk ({RuntimeInformation.ProcessArchitecture}). " +
            $"First, block {first}:\n  input {string.Join(' ', values.Skip(first * 32).Take(32).Select(v => v.ToString("R")))}\n" +
            $"  ggml  {Convert.ToHexString(expected, first * traits.BlockBytes, traits.BlockBytes)}\n" +
            $"  ours  {Convert.ToHexString(actual, first * traits.BlockBytes, traits.BlockBytes)}");
    }

    private static byte[] QuantizeWithOurs(QuantType type, float[] values, int rows, int columns)
    {
        int rowBytes = (int)QuantTypeTraits.Of(type).RowBytes(columns);
        var bytes = new byte[rows * rowBytes];
        for (int r = 0; r < rows; r++)
        {
            ReferenceQuantizer.Quantize(type, values.AsSpan(r * columns, columns), bytes.AsSpan(r * rowBytes, rowBytes));
        }
        return bytes;
    }

    /// <summary><c>quantize_row_q4_0_ref</c> as llama.cpp's arm64 build runs it: <c>fmaf(x, id, 8.5f)</c>.</summary>
    private static byte[] QuantizeQ4_0WithFusedMultiplyAdd(float[] values)
    {
        var blocks = new BlockQ4_0[values.Length / 32];
        for (int b = 0; b < blocks.Length; b++)
        {
            ReadOnlySpan<float> x = values.AsSpan(b * 32, 32);
            float absMax = 0f, max = 0f;
            foreach (float v in x)
            {
                if (absMax < MathF.Abs(v))
                {
                    absMax = MathF.Abs(v);
                    max = v;
                }
            }
            float d = max / -8f;
            float inverse = d != 0f ? 1f / d : 0f;
            blocks[b].Scale = (Half)d;
            for (int j = 0; j < 16; j++)
            {
                int low = Math.Min(15, (int)(sbyte)MathF.FusedMultiplyAdd(x[j], inverse, 8.5f));
                int high = Math.Min(15, (int)(sbyte)MathF.FusedMultiplyAdd(x[16 + j], inverse, 8.5f));
                blocks[b].Quants[j] = (byte)(low | (high << 4));
            }
        }
        return MemoryMarshal.AsBytes(blocks.AsSpan()).ToArray();
    }

    /// <summary>llama.cpp's libggml-base.so, loaded once from the test output by process architecture.</summary>
    private static class GgmlBase
    {
        private static readonly Lazy<nint> QuantizeChunk = new(LoadQuantizeChunk);

        public static string RuntimeFolder => RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => "linux-x64",
            Architecture.Arm64 => "linux-arm64",
            Architecture other => throw new PlatformNotSupportedException($"No libggml-base.so is shipped to the test output for {other}."),
        };

        public static string LibraryPath => Path.Combine(AppContext.BaseDirectory, "ggml", RuntimeFolder, "libggml-base.so");

        /// <summary><c>ggml_quantize_chunk(type, src, dst, start = 0, nrows, n_per_row, imatrix = NULL)</c>, with guard bytes past the end.</summary>
        public static byte[] Quantize(QuantType type, float[] values, int rows, int columns)
        {
            Assert.Equal((long)rows * columns, values.Length);
            var quantizeChunk = (delegate* unmanaged<int, float*, void*, long, long, long, float*, nuint>)QuantizeChunk.Value;
            int bytes = (int)QuantTypeTraits.Of(type).RowBytes(columns) * rows;
            const int guard = 64;
            var destination = new byte[bytes + guard];
            destination.AsSpan(bytes).Fill(0xA5);
            nuint written;
            fixed (float* source = values)
            fixed (byte* target = destination)
            {
                written = quantizeChunk((int)type, source, target, 0, rows, columns, null);
            }
            Assert.Equal((nuint)bytes, written);
            Assert.All(destination[bytes..], b => Assert.Equal(0xA5, b));
            return destination[..bytes];
        }

        private static nint LoadQuantizeChunk()
        {
            if (!OperatingSystem.IsLinux())
            {
                throw new PlatformNotSupportedException($"Only Linux builds of libggml-base.so are shipped to the test output; this is {RuntimeInformation.OSDescription}.");
            }
            string path = LibraryPath;
            if (!File.Exists(path))
            {
                throw new FileNotFoundException(
                    $"llama.cpp's libggml-base.so is not at {path}: the test project copies it there from the LLamaSharp.Backend.Cpu package.", path);
            }
            try
            {
                return NativeLibrary.GetExport(NativeLibrary.Load(path), "ggml_quantize_chunk");
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException or EntryPointNotFoundException)
            {
                // Usually a missing dependency (libgomp.so.1, libstdc++.so.6): the message names it.
                throw new InvalidOperationException($"Could not load ggml_quantize_chunk from {path}: {e.Message}", e);
            }
        }
    }
}
