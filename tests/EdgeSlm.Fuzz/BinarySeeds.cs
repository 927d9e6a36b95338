using System.Runtime.InteropServices;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Gguf;
using Google.Protobuf;

namespace EdgeSlm.Fuzz;

/// <summary>
/// The binary seeds, made by our own writers so that they stay valid as the formats evolve: GGUF files of a few KB
/// (every metadata type; a toy BERT encoder of random weights that BertModel loads) and hand-built ONNX protobufs.
/// Not models: nothing here was trained. The results are committed under corpus/; rerun after a format change.
/// </summary>
public static class BinarySeeds
{
    public static IEnumerable<string> WriteAll(string corpus)
    {
        yield return Write(corpus, "gguf", "every-type.gguf", EveryType());
        yield return Write(corpus, "gguf", "toy-bert.gguf", ToyBert());
        yield return Write(corpus, "gguf-decoder", "toy-llama.gguf", ToyDecoder("llama"));
        yield return Write(corpus, "gguf-decoder", "toy-qwen2.gguf", ToyDecoder("qwen2"));
        yield return Write(corpus, "gguf-decoder", "toy-llama-spm.gguf", ToyDecoder("llama", sentencePiece: true));
        yield return Write(corpus, "onnx", "matmul.onnx", OnnxGraph(packed: true));
        yield return Write(corpus, "onnx", "unpacked.onnx", OnnxGraph(packed: false));
        yield return Write(corpus, "onnx", "external-data.onnx", Model(Graph(Field(5, Tensor("w", [2], 1, raw: null, external: true)))));
    }

    private static string Write(string corpus, string target, string name, byte[] bytes)
    {
        string path = Path.Combine(corpus, target, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static byte[] ToBytes(GgufWriter writer)
    {
        using var stream = new MemoryStream();
        writer.WriteTo(stream);
        return stream.ToArray();
    }

    /// <summary>
    /// A one-layer decoder (hidden 32, 2 heads, 1 KV head) with a byte-level BPE vocabulary of 259 tokens, or a
    /// SentencePiece one (<c>llama</c>) of 263: &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;, the 256 byte tokens, three scored pieces and
    /// &lt;|im_end|&gt;.
    /// </summary>
    private static byte[] ToyDecoder(string architecture, bool sentencePiece = false)
    {
        string[] tokens;
        int[] types;
        var vocabulary = new List<(string Key, GgufValue Value)>();
        if (sentencePiece)
        {
            tokens = ["<unk>", "<s>", "</s>", .. Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>"), "\u2581t", "he", "\u2581the", "<|im_end|>"];
            types = [2, 3, 3, .. Enumerable.Repeat(6, 256), 1, 1, 1, 3];
            float[] scores = [0, 0, 0, .. new float[256], -2, -1, -3, 0];
            vocabulary.Add(("tokenizer.ggml.model", GgufValue.Of("llama")));
            vocabulary.Add(("tokenizer.ggml.tokens", GgufValue.Of(tokens)));
            vocabulary.Add(("tokenizer.ggml.scores", GgufValue.Of(scores)));
            vocabulary.Add(("tokenizer.ggml.token_type", GgufValue.Of(types)));
            vocabulary.Add(("tokenizer.ggml.bos_token_id", GgufValue.Of(1u)));
            vocabulary.Add(("tokenizer.ggml.eos_token_id", GgufValue.Of(2u)));
            vocabulary.Add(("tokenizer.ggml.unknown_token_id", GgufValue.Of(0u)));
            vocabulary.Add(("tokenizer.ggml.add_bos_token", GgufValue.Of(true)));
            vocabulary.Add(("tokenizer.ggml.add_space_prefix", GgufValue.Of(true)));
        }
        else
        {
            var byteChars = new List<string>();
            int next = 256;
            for (int b = 0; b < 256; b++)
            {
                bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
                byteChars.Add(((char)(printable ? b : next++)).ToString());
            }
            tokens = [.. byteChars, "\u0120t", "he", "<|endoftext|>"];
            types = tokens.Select((_, i) => i == tokens.Length - 1 ? 3 : 1).ToArray();
            vocabulary.Add(("tokenizer.ggml.model", GgufValue.Of("gpt2")));
            vocabulary.Add(("tokenizer.ggml.pre", GgufValue.Of(architecture == "qwen2" ? "qwen2" : "smollm")));
            vocabulary.Add(("tokenizer.ggml.tokens", GgufValue.Of(tokens)));
            vocabulary.Add(("tokenizer.ggml.token_type", GgufValue.Of(types)));
            vocabulary.Add(("tokenizer.ggml.merges", GgufValue.Of(["\u0120 t", "h e"])));
            vocabulary.Add(("tokenizer.ggml.bos_token_id", GgufValue.Of((uint)tokens.Length - 1)));
            vocabulary.Add(("tokenizer.ggml.eos_token_id", GgufValue.Of((uint)tokens.Length - 1)));
        }
        const int dim = 32, kv = 16;
        // The SentencePiece vocabulary's texts and scores are bigger: a narrower feed-forward keeps the seed under 64 KiB.
        int ffn = sentencePiece ? 16 : 32;
        var writer = new GgufWriter()
            .Add("general.architecture", GgufValue.Of(architecture))
            .Add($"{architecture}.context_length", GgufValue.Of(64u))
            .Add($"{architecture}.embedding_length", GgufValue.Of((uint)dim))
            .Add($"{architecture}.block_count", GgufValue.Of(1u))
            .Add($"{architecture}.feed_forward_length", GgufValue.Of((uint)ffn))
            .Add($"{architecture}.attention.head_count", GgufValue.Of(2u))
            .Add($"{architecture}.attention.head_count_kv", GgufValue.Of(1u))
            .Add($"{architecture}.attention.layer_norm_rms_epsilon", GgufValue.Of(1e-5f));
        foreach ((string key, GgufValue value) in vocabulary)
        {
            writer.Add(key, value);
        }
        int seed = 1;
        void Matrix(string name, int rows, int columns) => writer.AddTensor(name, QuantType.F32, [columns, rows], Floats(rows * columns, seed++));
        void Vector(string name, int length) => writer.AddTensor(name, QuantType.F32, [length], Floats(length, seed++));
        Matrix("token_embd.weight", tokens.Length, dim);
        Vector("blk.0.attn_norm.weight", dim);
        Matrix("blk.0.attn_q.weight", dim, dim);
        Matrix("blk.0.attn_k.weight", kv, dim);
        Matrix("blk.0.attn_v.weight", kv, dim);
        if (architecture == "qwen2")
        {
            Vector("blk.0.attn_q.bias", dim);
            Vector("blk.0.attn_k.bias", kv);
            Vector("blk.0.attn_v.bias", kv);
        }
        Matrix("blk.0.attn_output.weight", dim, dim);
        Vector("blk.0.ffn_norm.weight", dim);
        Matrix("blk.0.ffn_gate.weight", ffn, dim);
        Matrix("blk.0.ffn_up.weight", ffn, dim);
        Matrix("blk.0.ffn_down.weight", dim, ffn);
        Vector("output_norm.weight", dim);
        return ToBytes(writer);
    }

    private static byte[] EveryType()
    {
        var writer = new GgufWriter()
            .Add("general.architecture", GgufValue.Of("none"))
            .Add(GgufFile.AlignmentKey, GgufValue.Of(32u))
            .Add("u8", new GgufValue(GgufValueType.UInt8, (byte)200))
            .Add("i8", new GgufValue(GgufValueType.Int8, (sbyte)-3))
            .Add("u16", new GgufValue(GgufValueType.UInt16, (ushort)60000))
            .Add("i16", new GgufValue(GgufValueType.Int16, (short)-300))
            .Add("i32", GgufValue.Of(-70000))
            .Add("f32", GgufValue.Of(0.5f))
            .Add("bool", GgufValue.Of(true))
            .Add("u64", GgufValue.Of(1UL << 40))
            .Add("i64", new GgufValue(GgufValueType.Int64, -(1L << 40)))
            .Add("f64", new GgufValue(GgufValueType.Float64, 2.25))
            .Add("strings", GgufValue.Of(["a", "", "\u00e9t\u00e9"]))
            .Add("ints", GgufValue.Of([1, -2, 3]))
            .Add("bools", new GgufValue(GgufValueType.Array, new[] { true, false }, GgufValueType.Bool))
            .Add("nested", new GgufValue(GgufValueType.Array, new[] { GgufValue.Of([1.5f]), GgufValue.Of(["x"]) }, GgufValueType.Array));
        writer.AddTensor("f32", QuantType.F32, [4], Floats(4, 1));
        writer.AddTensor("f16", QuantType.F16, [8, 2], MemoryMarshal.AsBytes(Enumerable.Range(0, 16).Select(i => (Half)i).ToArray().AsSpan()).ToArray());
        writer.AddTensor("q4_0", QuantType.Q4_0, [32, 2], Quantized(QuantType.Q4_0, 32, 2, 2));
        writer.AddTensor("q8_0", QuantType.Q8_0, [32], Quantized(QuantType.Q8_0, 32, 1, 3));
        return ToBytes(writer);
    }

    /// <summary>The smallest encoder BertModel accepts: hidden 32, 2 heads, 1 layer, 6 tokens, 8 positions; q4_0 linear layers.</summary>
    private static byte[] ToyBert()
    {
        const int hidden = 32, feedForward = 32, context = 8;
        string[] tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "\u2581light", "s"];
        var writer = new GgufWriter()
            .Add(BertGguf.ArchitectureKey, GgufValue.Of(BertGguf.Architecture))
            .Add(BertGguf.NameKey, GgufValue.Of("toy"))
            .Add(BertGguf.ContextLengthKey, GgufValue.Of((uint)context))
            .Add(BertGguf.EmbeddingLengthKey, GgufValue.Of((uint)hidden))
            .Add(BertGguf.FeedForwardLengthKey, GgufValue.Of((uint)feedForward))
            .Add(BertGguf.BlockCountKey, GgufValue.Of(1u))
            .Add(BertGguf.HeadCountKey, GgufValue.Of(2u))
            .Add(BertGguf.LayerNormEpsilonKey, GgufValue.Of(1e-12f))
            .Add(BertGguf.PoolingTypeKey, GgufValue.Of(1u))
            .Add(BertGguf.TokensKey, GgufValue.Of(tokens))
            .Add(BertGguf.TokenTypesKey, GgufValue.Of([3, 3, 3, 3, 1, 1]))
            .Add(BertGguf.TokenTypeCountKey, GgufValue.Of(2u))
            .Add(BertGguf.ActivationOutliersKey(BertGguf.Block(0, "ffn_down.weight")), GgufValue.Of([0, 5]));
        int seed = 10;
        writer.AddTensor(BertGguf.TokenEmbeddings, QuantType.F32, [hidden, tokens.Length], Floats(hidden * tokens.Length, seed++));
        writer.AddTensor(BertGguf.PositionEmbeddings, QuantType.F32, [hidden, context], Floats(hidden * context, seed++));
        writer.AddTensor(BertGguf.TokenTypeEmbeddings, QuantType.F32, [hidden, 2], Floats(hidden * 2, seed++));
        writer.AddTensor(BertGguf.EmbeddingNormWeight, QuantType.F32, [hidden], Floats(hidden, seed++));
        writer.AddTensor(BertGguf.EmbeddingNormBias, QuantType.F32, [hidden], Floats(hidden, seed++));
        foreach (string part in BertGguf.LinearParts)
        {
            (int rows, int columns) = part switch { "ffn_up" => (feedForward, hidden), "ffn_down" => (hidden, feedForward), _ => (hidden, hidden) };
            writer.AddTensor(BertGguf.Block(0, part + ".weight"), QuantType.Q4_0, [columns, rows], Quantized(QuantType.Q4_0, columns, rows, seed++));
            writer.AddTensor(BertGguf.Block(0, part + ".bias"), QuantType.F32, [rows], Floats(rows, seed++));
        }
        foreach (string part in BertGguf.NormParts)
        {
            writer.AddTensor(BertGguf.Block(0, part + ".weight"), QuantType.F32, [hidden], Floats(hidden, seed++));
            writer.AddTensor(BertGguf.Block(0, part + ".bias"), QuantType.F32, [hidden], Floats(hidden, seed++));
        }
        return ToBytes(writer);
    }

    private static float[] Values(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
    }

    private static byte[] Floats(int count, int seed) => MemoryMarshal.AsBytes(Values(count, seed).AsSpan()).ToArray();

    private static byte[] Quantized(QuantType type, int columns, int rows, int seed)
    {
        QuantTypeTraits traits = QuantTypeTraits.Of(type);
        var bytes = new byte[traits.RowBytes(columns) * rows];
        ReferenceQuantizer.Quantize(type, Values(columns * rows, seed), bytes);
        return bytes;
    }

    // ONNX protobuf, by field number (onnx.proto3): ModelProto 1 ir_version, 7 graph; GraphProto 1 node, 5 initializer,
    // 11 input, 12 output; NodeProto 1 input, 2 output, 3 name, 4 op_type, 5 attribute; AttributeProto 1 name, 5 t;
    // TensorProto 1 dims, 2 data_type, 4 float_data, 7 int64_data, 8 name, 9 raw_data, 13 external_data; ValueInfoProto 1 name.
    private static byte[] OnnxGraph(bool packed)
    {
        byte[] weight = Tensor("w", [2, 3], 1, raw: Floats(6, 1));
        byte[] shape = Message(o =>
        {
            Repeated(o, 1, [2L], packed);
            o.WriteTag(2, WireFormat.WireType.Varint); o.WriteInt32(7);
            Repeated(o, 7, [2L, 3L], packed);
            o.WriteTag(8, WireFormat.WireType.LengthDelimited); o.WriteString("shape");
        });
        byte[] constant = Message(o =>
        {
            Repeated(o, 1, [1L], packed);
            o.WriteTag(2, WireFormat.WireType.Varint); o.WriteInt32(1);
            o.WriteTag(4, WireFormat.WireType.Fixed32); o.WriteFloat(1.5f);
            o.WriteTag(8, WireFormat.WireType.LengthDelimited); o.WriteString("c");
        });
        byte[] matmul = Node("MatMul", "mm", ["input", "w"], ["y"], attribute: null);
        byte[] constantNode = Node("Constant", "const", [], ["c"], Message(o =>
        {
            o.WriteTag(1, WireFormat.WireType.LengthDelimited); o.WriteString("value");
            o.WriteTag(5, WireFormat.WireType.LengthDelimited); o.WriteBytes(ByteString.CopyFrom(constant));
        }));
        return Model(Graph(Field(1, matmul), Field(1, constantNode), Field(5, weight), Field(5, shape),
            Field(11, Message(o => { o.WriteTag(1, WireFormat.WireType.LengthDelimited); o.WriteString("input"); })),
            Field(12, Message(o => { o.WriteTag(1, WireFormat.WireType.LengthDelimited); o.WriteString("y"); }))));
    }

    private static void Repeated(CodedOutputStream o, int field, long[] values, bool packed)
    {
        if (packed)
        {
            o.WriteTag(field, WireFormat.WireType.LengthDelimited);
            o.WriteBytes(ByteString.CopyFrom(Message(inner => { foreach (long v in values) inner.WriteInt64(v); })));
            return;
        }
        foreach (long v in values)
        {
            o.WriteTag(field, WireFormat.WireType.Varint);
            o.WriteInt64(v);
        }
    }

    private static byte[] Tensor(string name, long[] dimensions, int dataType, byte[]? raw, bool external = false) => Message(o =>
    {
        Repeated(o, 1, dimensions, packed: true);
        o.WriteTag(2, WireFormat.WireType.Varint); o.WriteInt32(dataType);
        o.WriteTag(8, WireFormat.WireType.LengthDelimited); o.WriteString(name);
        if (raw is not null)
        {
            o.WriteTag(9, WireFormat.WireType.LengthDelimited); o.WriteBytes(ByteString.CopyFrom(raw));
        }
        if (external)
        {
            o.WriteTag(13, WireFormat.WireType.LengthDelimited); o.WriteBytes(ByteString.CopyFromUtf8("\n\blocation\u0012\u0004w.bin"));
        }
    });

    private static byte[] Node(string opType, string name, string[] inputs, string[] outputs, byte[]? attribute) => Message(o =>
    {
        foreach (string input in inputs) { o.WriteTag(1, WireFormat.WireType.LengthDelimited); o.WriteString(input); }
        foreach (string output in outputs) { o.WriteTag(2, WireFormat.WireType.LengthDelimited); o.WriteString(output); }
        o.WriteTag(3, WireFormat.WireType.LengthDelimited); o.WriteString(name);
        o.WriteTag(4, WireFormat.WireType.LengthDelimited); o.WriteString(opType);
        if (attribute is not null) { o.WriteTag(5, WireFormat.WireType.LengthDelimited); o.WriteBytes(ByteString.CopyFrom(attribute)); }
    });

    private static (int Field, byte[] Bytes) Field(int field, byte[] bytes) => (field, bytes);

    private static byte[] Graph(params (int Field, byte[] Bytes)[] fields) => Message(o =>
    {
        foreach ((int field, byte[] bytes) in fields)
        {
            o.WriteTag(field, WireFormat.WireType.LengthDelimited);
            o.WriteBytes(ByteString.CopyFrom(bytes));
        }
    });

    private static byte[] Model(byte[] graph) => Message(o =>
    {
        o.WriteTag(1, WireFormat.WireType.Varint); o.WriteInt64(8);
        o.WriteTag(7, WireFormat.WireType.LengthDelimited); o.WriteBytes(ByteString.CopyFrom(graph));
    });

    private static byte[] Message(Action<CodedOutputStream> write)
    {
        using var stream = new MemoryStream();
        using (var output = new CodedOutputStream(stream, leaveOpen: true))
        {
            write(output);
        }
        return stream.ToArray();
    }
}
