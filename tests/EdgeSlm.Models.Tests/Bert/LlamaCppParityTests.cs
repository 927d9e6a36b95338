using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Bert.Training;
using EdgeSlm.Models.Tests.Bert.Training;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Models.Tokenizers;
using EdgeSlm.Testing;
using LLama.Common;
using LLama.Native;
using LLama;

namespace EdgeSlm.Models.Tests.Bert;

/// <summary>llama.cpp (through LLamaSharp and its CPU backend) loads the files we write and embeds as we do.</summary>
public sealed class LlamaCppParityTests(ConvertedModels models, ITestOutputHelper output)
{
    static LlamaCppParityTests()
    {
        LlamaCppLibrary.Configure();
    }

    [Theory]
    [InlineData("f32")]
    [InlineData("q4_0")]
    public async Task Llama_cpp_loads_our_file_and_its_embeddings_agree_with_ours(string typeName)
    {
        QuantType type = QuantTypeTraits.Parse(typeName).Type;
        await AgreeWithLlamaCpp(models.Path(BundledModel.MiniLM, type), typeName);
    }

    [Fact]
    public async Task Llama_cpp_loads_a_tuned_q4_0_file_and_its_embeddings_agree_with_ours()
    {
        BundledModel bundled = BundledModel.MiniLM;
        string[] vocabulary = bundled.ReadVocabulary();
        BertParameters tuned = OnnxToGguf.ReadParameters(models.Onnx(bundled), vocabulary, bundled.Pooling);
        TuningStep.Once(tuned, vocabulary, learningRate: 1e-3f);
        string path = Path.Combine(Path.GetTempPath(), $"edgeslm-tuned-{Guid.NewGuid():N}.gguf");
        try
        {
            OnnxToGguf.ConvertTo(path, tuned, vocabulary, "tuned", TensorTypes.For(QuantType.Q4_0));
            await AgreeWithLlamaCpp(path, "tuned q4_0");
        }
        finally
        {
            File.Delete(path);
        }
    }

    private async Task AgreeWithLlamaCpp(string path, string typeName)
    {
        var parameters = new ModelParams(path)
        {
            Embeddings = true,
            PoolingType = LLamaPoolingType.Mean,
            ContextSize = 512,
            BatchSize = 512,
            UBatchSize = 512,
            Threads = 1,
            GpuLayerCount = 0,
        };
        using LLamaWeights weights = LLamaWeights.LoadFromFile(parameters);
        using var embedder = new LLamaEmbedder(weights, parameters);

        using BertModel model = BertModel.Load(path);
        var tokenizer = new WordPieceTokenizer(model.Vocabulary, model.Config.ContextLength);
        using var encoder = new BertEncoder(model);
        var ours = new float[model.Config.HiddenSize];
        var cosines = new List<double>();
        foreach (string sentence in TestEnvironment.Sentences(40))
        {
            int[] ids = tokenizer.Encode(sentence);
            encoder.Encode(ids, [ids.Length], ours);
            IReadOnlyList<float[]> theirs = await embedder.GetEmbeddings(sentence, TestContext.Current.CancellationToken);
            Assert.Single(theirs);
            cosines.Add(Cosine.Of(ours, theirs[0]));
            if (cosines[^1] < 0.999) output.WriteLine($"{cosines[^1]:F4} {sentence} ours [{string.Join(",", ids)}] theirs [{string.Join(",", weights.Tokenize(sentence, true, false, System.Text.Encoding.UTF8).Select(t => (int)t))}]");
        }
        output.WriteLine($"llama.cpp vs EdgeSlm on the same {typeName} file: mean cosine {cosines.Average():F6}, minimum {cosines.Min():F6}");
        Assert.True(cosines.Min() >= 0.999, $"minimum cosine {cosines.Min():F6}");
    }
}
