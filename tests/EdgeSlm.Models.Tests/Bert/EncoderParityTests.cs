using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Models.Tokenizers;
using EdgeSlm.Testing;

namespace EdgeSlm.Models.Tests.Bert;

/// <summary>Our encoder against ONNX Runtime fp32 on the same weights, on real sentences, for both bundled models.</summary>
public sealed class EncoderParityTests(ConvertedModels models, ITestOutputHelper output)
{
    private const int SentenceCount = 200;

    public static TheoryData<string, string, double, double> Thresholds => new()
    {
        // model, type, minimum cosine for every sentence, minimum mean cosine
        { "minilm", "f32", 0.9999, 0.9999 },
        { "minilm", "q8_0", 0.999, 0.999 },
        { "minilm", "q4_0", 0.95, 0.98 },
        { "arctic-xs", "f32", 0.9999, 0.9999 },
        { "arctic-xs", "q8_0", 0.999, 0.999 },
        { "arctic-xs", "q4_0", 0.95, 0.98 },
    };

    [Theory]
    [MemberData(nameof(Thresholds))]
    public void Embeddings_match_onnx_runtime(string modelName, string typeName, double minimum, double meanMinimum)
    {
        BundledModel bundled = BundledModel.Find(modelName);
        QuantType type = QuantTypeTraits.Parse(typeName).Type;
        using BertModel model = BertModel.Load(models.Path(bundled, type));
        var tokenizer = new WordPieceTokenizer(model.Vocabulary, model.Config.ContextLength);
        using var encoder = new BertEncoder(model);
        using var reference = new OnnxRuntimeReference(bundled);

        var cosines = new List<double>();
        var embedding = new float[model.Config.HiddenSize];
        foreach (string sentence in TestEnvironment.Sentences(SentenceCount))
        {
            int[] ids = tokenizer.Encode(sentence);
            encoder.Encode(ids, [ids.Length], embedding);
            cosines.Add(Cosine.Of(embedding, reference.Encode(ids)));
        }
        output.WriteLine($"{modelName} {typeName}: {cosines.Count} sentences, mean cosine {cosines.Average():F6}, minimum {cosines.Min():F6}");
        Assert.Equal(SentenceCount, cosines.Count);
        Assert.True(cosines.Min() >= minimum, $"minimum cosine {cosines.Min():F6} < {minimum}");
        Assert.True(cosines.Average() >= meanMinimum, $"mean cosine {cosines.Average():F6} < {meanMinimum}");
    }
}
