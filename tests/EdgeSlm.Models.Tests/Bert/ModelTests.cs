using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Models.Gguf;
using EdgeSlm.Models.Onnx;
using EdgeSlm.Models.Tokenizers;
using EdgeSlm.Testing;

namespace EdgeSlm.Models.Tests.Bert;

public sealed class ModelTests(ConvertedModels models)
{
    [Fact]
    public void Converted_file_uses_llama_cpp_bert_names_shapes_and_metadata()
    {
        using GgufFile file = GgufFile.Open(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        Assert.Equal("bert", file.Require("general.architecture").AsString("a"));
        Assert.Equal(384, file.Require("bert.embedding_length").AsInt64("e"));
        Assert.Equal(6, file.Require("bert.block_count").AsInt64("b"));
        Assert.Equal(12, file.Require("bert.attention.head_count").AsInt64("h"));
        Assert.Equal(1536, file.Require("bert.feed_forward_length").AsInt64("f"));
        Assert.Equal(512, file.Require("bert.context_length").AsInt64("c"));
        Assert.Equal(1, file.Require("bert.pooling_type").AsInt64("p"));
        Assert.Equal(1e-12f, file.Require("bert.attention.layer_norm_epsilon").AsSingle("eps"), 1e-18f);
        string[] tokens = file.Require("tokenizer.ggml.tokens").AsArray<string>("t");
        Assert.Equal(30522, tokens.Length);
        Assert.Equal("[CLS]", tokens[101]);
        Assert.Equal("\u2581the", tokens[1996]);               // "the": a word start gains U+2581
        Assert.Equal("ing", tokens[Array.IndexOf(tokens, "ing")]); // "##ing": a continuation loses its marker

        Assert.Equal(new long[] { 384, 30522 }, file.Tensor("token_embd.weight").Dimensions);
        Assert.Equal(new long[] { 384, 512 }, file.Tensor("position_embd.weight").Dimensions);
        Assert.Equal(new long[] { 384, 2 }, file.Tensor("token_types.weight").Dimensions);
        for (int layer = 0; layer < 6; layer++)
        {
            Assert.Equal(new long[] { 384, 384 }, file.Tensor($"blk.{layer}.attn_q.weight").Dimensions);
            Assert.Equal(new long[] { 384, 1536 }, file.Tensor($"blk.{layer}.ffn_up.weight").Dimensions);
            Assert.Equal(new long[] { 1536, 384 }, file.Tensor($"blk.{layer}.ffn_down.weight").Dimensions);
            Assert.Equal(QuantType.F32, file.Tensor($"blk.{layer}.attn_output_norm.weight").Type);
            Assert.Equal(QuantType.F32, file.Tensor($"blk.{layer}.ffn_down.bias").Type);
            Assert.True(QuantTypeTraits.Of(file.Tensor($"blk.{layer}.attn_v.weight").Type).IsQuantized);
        }
        Assert.Equal(5 + 6 * 16, file.Tensors.Count);
    }

    [Fact]
    public void Gptq_layers_keep_no_outlier_columns_and_q8_0_layers_keep_theirs()
    {
        const string Prefix = "edgeslm.activation_outliers.";
        using GgufFile q4 = GgufFile.Open(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        Assert.DoesNotContain(q4.Metadata.Keys, k => k.StartsWith(Prefix, StringComparison.Ordinal));
        using GgufFile q8 = GgufFile.Open(models.Path(BundledModel.MiniLM, QuantType.Q8_0));
        Assert.Equal(36, q8.Metadata.Keys.Count(k => k.StartsWith(Prefix, StringComparison.Ordinal)));
    }

    [Fact]
    public void Arctic_converts_with_cls_pooling()
    {
        using BertModel model = BertModel.Load(models.Path(BundledModel.ArcticXs, QuantType.Q8_0));
        Assert.Equal(Pooling.Cls, model.Config.Pooling);
        Assert.Equal(12, model.Config.HeadCount);
    }

    [Fact]
    public void Linear_weights_are_the_onnx_matmul_weights_transposed()
    {
        using BertModel model = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.F32));
        // ONNX keeps the query weight as MatMul's second input, [in, out]; GGUF row r is output r.
        var onnx = models.Onnx(BundledModel.MiniLM);
        Onnx.OnnxNode add = onnx.Nodes.First(n => n.OpType == "Add" && n.Inputs.Contains("encoder.layer.0.attention.self.query.bias"));
        string matMulOutput = add.Inputs.First(i => i != "encoder.layer.0.attention.self.query.bias");
        Onnx.OnnxNode matMul = onnx.Nodes.First(n => n.Outputs.Contains(matMulOutput));
        float[] onnxWeight = onnx.Initializers[matMul.Inputs[1]].ToSingles();
        float[] ours = model.Layers[0].Query.Dequantize();
        for (int r = 0; r < 384; r += 37)
            for (int c = 0; c < 384; c += 41)
                Assert.Equal(onnxWeight[c * 384 + r], ours[r * 384 + c]);
    }

    [Fact]
    public void Fast_encoder_matches_the_reference_forward_pass()
    {
        using BertModel model = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q8_0));
        var tokenizer = new WordPieceTokenizer(model.Vocabulary, model.Config.ContextLength);
        var reference = new BertReference(model);
        using var encoder = new BertEncoder(model, threads: 2);
        var embedding = new float[384];
        foreach (string sentence in TestEnvironment.Sentences(12))
        {
            int[] ids = tokenizer.Encode(sentence);
            encoder.Encode(ids, [ids.Length], embedding);
            // The fast path also quantizes activations to Q8_0; the reference keeps them in float.
            Assert.True(Cosine.Of(embedding, reference.Encode(ids)) > 0.995, sentence);
        }
    }

    [Fact]
    public void A_batch_of_different_lengths_equals_each_sentence_alone()
    {
        using BertModel model = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        var tokenizer = new WordPieceTokenizer(model.Vocabulary, model.Config.ContextLength);
        using var encoder = new BertEncoder(model);
        int[][] sentences = TestEnvironment.Sentences(9).Select(tokenizer.Encode).ToArray();
        Assert.True(sentences.Select(s => s.Length).Distinct().Count() > 3);

        var batch = new float[sentences.Length * 384];
        encoder.Encode(sentences.SelectMany(s => s).ToArray(), sentences.Select(s => s.Length).ToArray(), batch);
        var single = new float[384];
        for (int i = 0; i < sentences.Length; i++)
        {
            encoder.Encode(sentences[i], [sentences[i].Length], single);
            // Same tokens, same kernels: only the GEMM tiling differs, so the results agree to float rounding.
            Assert.True(Cosine.Of(single, batch[(i * 384)..((i + 1) * 384)]) > 0.99999, $"sentence {i}");
        }
    }

    [Fact]
    public void Tokenizer_lower_cases_for_uncased_models_and_truncates_to_the_context()
    {
        using BertModel model = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        var tokenizer = new WordPieceTokenizer(model.Vocabulary, model.Config.ContextLength);
        Assert.True(tokenizer.LowerCase);
        Assert.Equal(tokenizer.Encode("turn on the lights"), tokenizer.Encode("Turn ON the Lights"));
        int[] ids = tokenizer.Encode("turn on the lights");
        Assert.Equal([101, 2735, 2006, 1996, 4597, 102], ids);
        int[] longIds = tokenizer.Encode(string.Join(' ', Enumerable.Repeat("lights", 1000)), out bool truncated);
        Assert.True(truncated);
        Assert.Equal(512, longIds.Length);
        Assert.Equal(102, longIds[^1]);
    }
}

[Collection(AllocationCollection.Name)]
public sealed class EncoderAllocationTests(ConvertedModels models)
{
    [Fact]
    public void Encoding_allocates_nothing_after_warm_up()
    {
        using BertModel model = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        var tokenizer = new WordPieceTokenizer(model.Vocabulary, model.Config.ContextLength);
        using var encoder = new BertEncoder(model, threads: 1);
        int[] ids = tokenizer.Encode("set a timer for ten minutes in the kitchen please");
        int[] lengths = [ids.Length];
        var embedding = new float[384];
        encoder.Encode(ids, lengths, embedding);

        // One thread, so all of the encoder's work is on this thread and the count is exact (a process-wide
        // count would also see the test host's own threads).
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10; i++)
        {
            encoder.Encode(ids, lengths, embedding);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
