using System.Text;
using EdgeSlm.Kernels.Conversion;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Gguf;
using EdgeSlm.Models.Llama;
using EdgeSlm.Testing;

namespace EdgeSlm.Models.Tests.Llama;

/// <summary>Files with storage-only types (a Q4_K_M mix, q5_0, q5_1, q5_k, q6_k, bf16): what the loader converts, to
/// what, and that the converted model computes what its weights say.</summary>
public sealed class LlamaConversionTests(ITestOutputHelper output)
{
    /// <summary>Architecture, weight types (<see cref="WeightTypes.Parse"/>), tied, hidden size. Hidden 256 keeps the
    /// k-quants; at hidden 64 a Q4_K_M mix falls back to q5_0 and q8_0 everywhere but ffn_down (Qwen2.5-0.5B's 896
    /// columns do the same in a real Q4_K_M file).</summary>
    public static TheoryData<string, string, bool, int> Files() => new()
    {
        { "llama", "q4_k_m", true, 256 }, { "qwen2", "q4_k_m", false, 256 }, { "qwen2", "q4_k_m", true, 64 },
        { "llama", "q5_k", false, 256 }, { "qwen2", "q6_k", true, 256 },
        { "llama", "q5_0", true, 64 }, { "qwen2", "q5_1", false, 64 },
        { "llama", "bf16", false, 64 }, { "qwen2", "bf16", true, 64 },
    };

    internal static DecoderShape Shape(string architecture, bool tied, int hidden) =>
        architecture == "llama" ? DecoderShape.TinyLlama(tied, hidden) : DecoderShape.TinyQwen2(tied, hidden);

    internal static string File(string architecture, string types, bool tied, int hidden) =>
        SyntheticDecoder.Cached(Shape(architecture, tied, hidden), WeightTypes.Parse(types));

    /// <summary>Minimum cosine between two computations of the same logits: bf16 becomes f32 exactly; everything
    /// else becomes q8_0, so the q8_0 threshold applies.</summary>
    internal static double Tolerance(string types) => types == "bf16" ? 0.9999 : 0.999;

    [Fact]
    public void A_Q4_K_M_file_loads_with_q4_k_and_q6_k_converted_to_q8_0()
    {
        string path = File("llama", "q4_k_m", tied: true, hidden: 256);
        using LlamaModel model = LlamaModel.Load(path);
        LlamaWeights w = model.Weights;
        // llama.cpp's Q4_K_M: q6_k for the output (here the tied embedding), and for attn_v and ffn_down in the
        // layers use_more_bits picks (of 2 layers: layer 1); q4_k for the rest.
        Assert.Equal((QuantType.Q6_K, QuantType.Q8_0), (w.TokenEmbedding.StoredType, w.TokenEmbedding.Type));
        Assert.Same(w.TokenEmbedding, w.Output);
        Assert.Equal((QuantType.Q4_K, QuantType.Q8_0), (w.Layers[0].Value.StoredType, w.Layers[0].Value.Type));
        Assert.Equal((QuantType.Q6_K, QuantType.Q8_0), (w.Layers[1].Value.StoredType, w.Layers[1].Value.Type));
        Assert.Equal((QuantType.Q6_K, QuantType.Q8_0), (w.Layers[1].Down.StoredType, w.Layers[1].Down.Type));
        Assert.Equal((QuantType.Q4_K, QuantType.Q8_0), (w.Layers[1].Gate.StoredType, w.Layers[1].Gate.Type));
        Assert.All(w.Matrices, m => Assert.True(m.Converted && m.Multipliable));
        Assert.Equal(w.Matrices.Sum(m => (long)m.Rows * m.Columns / 32 * 34), w.ConvertedBytes);

        // Every converted row is its stored row within q8_0's rounding.
        using GgufFile file = GgufFile.Open(path);
        foreach (DecoderMatrix m in new[] { w.TokenEmbedding, w.Layers[0].Value, w.Layers[1].Down })
        {
            GgufTensorInfo tensor = file.Tensor(m.Name);
            long rowBytes = QuantTypeTraits.Of(tensor.Type).RowBytes(m.Columns);
            foreach (int row in new[] { 0, m.Rows / 2, m.Rows - 1 })
            {
                var stored = new float[m.Columns];
                var converted = new float[m.Columns];
                ReferenceQuantizer.Dequantize(tensor.Type, file.TensorBytes(tensor).Slice((int)(row * rowBytes), (int)rowBytes), stored);
                m.DequantizeRow(row, converted);
                for (int b = 0; b < m.Columns / 32; b++)
                {
                    float absMax = stored.AsSpan(32 * b, 32).ToArray().Max(Math.Abs);
                    for (int j = 32 * b; j < 32 * b + 32; j++)
                    {
                        Assert.True(Math.Abs(stored[j] - converted[j]) <= absMax / 127f * 0.57f, $"{m.Name} row {row} element {j}: {stored[j]} became {converted[j]}");
                    }
                }
            }
        }
        output.WriteLine($"{Path.GetFileName(path)}: {model.FileBytes / 1e6:F2} MB file, {w.ConvertedBytes / 1e6:F2} MB converted in {w.ConversionTime.TotalMilliseconds:F0} ms");
    }

    [Fact]
    public void An_untied_embedding_stays_as_stored_and_a_lookup_dequantizes_its_row()
    {
        using LlamaModel model = LlamaModel.Load(File("qwen2", "q4_k_m", tied: false, hidden: 256));
        DecoderMatrix embedding = model.Weights.TokenEmbedding;
        Assert.Equal((QuantType.Q4_K, QuantType.Q4_K, false, false), (embedding.StoredType, embedding.Type, embedding.Converted, embedding.Multipliable));
        Assert.Equal((QuantType.Q6_K, QuantType.Q8_0), (model.Weights.Output.StoredType, model.Weights.Output.Type));
        Assert.DoesNotContain(embedding, model.Weights.Matrices.Where(m => m.Converted));

        using GgufFile file = GgufFile.Open(model.Path);
        GgufTensorInfo tensor = file.Tensor(LlamaGguf.TokenEmbedding);
        var expected = new float[256];
        StorageDequantizer.DequantizeQ4_K(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, BlockQ4_K>(file.TensorBytes(tensor).Slice(1234 * 144, 144)), expected);
        var actual = new float[256];
        embedding.DequantizeRow(1234, actual);
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Bf16_matrices_become_f32_exactly_and_q5_0_becomes_q8_0_exactly()
    {
        using LlamaModel bf16 = LlamaModel.Load(File("qwen2", "bf16", tied: true, hidden: 64));
        Assert.All(bf16.Weights.Matrices, m => Assert.Equal((QuantType.BF16, QuantType.F32), (m.StoredType, m.Type)));
        using LlamaModel q5 = LlamaModel.Load(File("llama", "q5_0", tied: true, hidden: 64));
        foreach (LlamaModel model in new[] { bf16, q5 })
        {
            using GgufFile f = GgufFile.Open(model.Path);
            DecoderMatrix m = model.Weights.Layers[1].Gate;
            GgufTensorInfo tensor = f.Tensor(m.Name);
            var stored = new float[m.Rows * m.Columns];
            ReferenceQuantizer.Dequantize(tensor.Type, f.TensorBytes(tensor), stored);
            var row = new float[m.Columns];
            for (int r = 0; r < m.Rows; r++)
            {
                m.DequantizeRow(r, row);
                Assert.Equal(stored.AsSpan(r * m.Columns, m.Columns).ToArray(), row);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void Fast_forward_pass_agrees_with_the_reference_on_converted_weights(string architecture, string types, bool tied, int hidden)
    {
        using LlamaModel model = LlamaModel.Load(File(architecture, types, tied, hidden));
        int vocabulary = model.Config.VocabularySize;
        int[] prompt = LlamaDecoderTests.Prompt(16, seed: 5);
        var reference = new LlamaReference(model, context: 32);
        using var decoder = new LlamaDecoder(model, context: 32, threads: 2, batchSize: 7);
        var fast = new float[prompt.Length * vocabulary];
        decoder.Evaluate(prompt, fast);
        var expected = new float[vocabulary];
        double minimum = 1;
        for (int t = 0; t < prompt.Length; t++)
        {
            reference.Forward(prompt[t], t, expected);
            minimum = Math.Min(minimum, Cosine.Of(expected, fast.AsSpan(t * vocabulary, vocabulary).ToArray()));
        }
        output.WriteLine($"{architecture} {types} {(tied ? "tied" : "untied")} hidden {hidden}: minimum cosine {minimum:F7}");
        Assert.True(minimum >= Tolerance(types), $"minimum cosine {minimum:F7}");
    }

    [Theory]
    [InlineData("truncated", "tensor 'output.weight' (")]
    [InlineData("shape", "tensor 'blk.0.ffn_gate.weight' is 512 x 384, expected 256 x 768")]
    [InlineData("block size", "tensor 'blk.0.ffn_up.weight' (q4_k) has rows of 64 elements, not a multiple of its block size 256")]
    [InlineData("infinite scale", "tensor 'blk.1.ffn_up.weight' (q4_k) row 0 holds a NaN or an infinity")]
    public void A_hostile_k_quant_tensor_fails_in_one_line_naming_it(string broken, string expected)
    {
        string source = File("qwen2", "q4_k_m", tied: false, hidden: broken == "block size" ? 64 : 256);
        byte[] bytes = System.IO.File.ReadAllBytes(source);
        using (GgufFile original = GgufFile.Open(source))
        {
            switch (broken)
            {
                case "truncated":
                    bytes = bytes[..^100]; // output.weight (q6_k) is the last tensor
                    break;
                case "shape":
                    // Same bytes (768 rows of one super-block), declared as 384 rows of two.
                    Rewrite(original, ref bytes, "blk.0.ffn_gate.weight", t => (t.Type, [512, 384]));
                    break;
                case "block size":
                    // At hidden 64 the mix stores ffn_up as q5_0 (rows of 2 blocks); call it q4_k.
                    Assert.Equal(QuantType.Q5_0, original.Tensor("blk.0.ffn_up.weight").Type);
                    PatchType(original, bytes, "blk.0.ffn_up.weight", QuantType.Q4_K);
                    break;
                case "infinite scale":
                    GgufTensorInfo up = original.Tensor("blk.1.ffn_up.weight");
                    Assert.Equal(QuantType.Q4_K, up.Type);
                    BitConverter.TryWriteBytes(bytes.AsSpan((int)(original.DataOffset + up.Offset), 2), (ushort)0x7C00);
                    break;
            }
        }
        string path = Path.Combine(Path.GetTempPath(), "edgeslm-decoder-tests", $"hostile-k-{Guid.NewGuid():N}.gguf");
        System.IO.File.WriteAllBytes(path, bytes);
        try
        {
            var e = Assert.Throws<GgufFormatException>(() => LlamaModel.Load(path));
            output.WriteLine(e.Message);
            Assert.DoesNotContain('\n', e.Message);
            Assert.StartsWith(path + ": ", e.Message);
            Assert.Contains(expected, e.Message);
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }

    /// <summary>Overwrites the ggml type id in <paramref name="name"/>'s tensor-table entry.</summary>
    private static void PatchType(GgufFile file, byte[] bytes, string name, QuantType type)
    {
        int at = TypeOffset(file, bytes, name);
        BitConverter.TryWriteBytes(bytes.AsSpan(at, 4), (uint)type);
    }

    /// <summary>The whole file written again with <paramref name="name"/>'s type and dimensions changed, bytes kept.</summary>
    private static void Rewrite(GgufFile file, ref byte[] bytes, string name, Func<GgufTensorInfo, (QuantType, long[])> change)
    {
        var writer = new GgufWriter();
        foreach ((string key, GgufValue value) in file.Metadata) writer.Add(key, value);
        foreach (GgufTensorInfo tensor in file.Tensors)
        {
            (QuantType type, long[] dimensions) = tensor.Name == name ? change(tensor) : (tensor.Type, tensor.Dimensions);
            writer.AddTensor(tensor.Name, type, dimensions, file.TensorBytes(tensor).ToArray());
        }
        using var stream = new MemoryStream();
        writer.WriteTo(stream);
        bytes = stream.ToArray();
    }

    private static int TypeOffset(GgufFile file, byte[] bytes, string name)
    {
        // A tensor entry: u64 name length, name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset.
        byte[] entry = [.. BitConverter.GetBytes((ulong)name.Length), .. Encoding.UTF8.GetBytes(name)];
        int at = bytes.AsSpan(0, (int)file.DataOffset).IndexOf(entry);
        Assert.True(at > 0, $"no tensor entry for {name}");
        at += entry.Length;
        int dimensions = BitConverter.ToInt32(bytes, at);
        return at + 4 + 8 * dimensions;
    }
}
