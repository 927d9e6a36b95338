using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Bert.Training;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Models.Tokenizers;
using EdgeSlm.Testing;

namespace EdgeSlm.Models.Tests.Bert.Training;

/// <summary>The trainable encoder on the bundled MiniLM's fp32 weights against <see cref="BertReference"/> on the f32 conversion.</summary>
public sealed class TrainableEncoderParityTests(ConvertedModels models, ITestOutputHelper output)
{
    /// <summary>Float sums against BertReference's double sums through six layers, per embedding element (elements are about 0.05; measured 7.5e-8).</summary>
    private const float ElementTolerance = 1e-6f;

    [Fact]
    public void Trainable_forward_equals_the_reference_forward_on_the_bundled_minilm()
    {
        BundledModel bundled = BundledModel.MiniLM;
        using BertModel model = BertModel.Load(models.Path(bundled, QuantType.F32));
        var reference = new BertReference(model);
        BertParameters parameters = OnnxToGguf.ReadParameters(models.Onnx(bundled), bundled.ReadVocabulary(), bundled.Pooling);
        Assert.Equal(model.Config, parameters.Config);
        var encoder = new TrainableEncoder(parameters);
        var tokenizer = new WordPieceTokenizer(model.Vocabulary, model.Config.ContextLength);
        var activations = new TrainingActivations(parameters.Config, 64);

        float worst = 0;
        foreach (string sentence in TestEnvironment.Sentences(6))
        {
            int[] ids = tokenizer.Encode(sentence);
            float[] expected = reference.Encode(ids);
            ReadOnlySpan<float> actual = encoder.Forward(ids, activations);
            for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(actual[i] - expected[i]));
        }
        output.WriteLine($"largest element difference {worst:E2}");
        Assert.True(worst <= ElementTolerance, $"largest element difference {worst:E2} > {ElementTolerance:E2}");
    }
}
