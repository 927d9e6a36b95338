using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Bert.Training;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Models.Tests.Bert.Training;
using EdgeSlm.Models.Tokenizers;
using EdgeSlm.Testing;

namespace EdgeSlm.Models.Tests.Conversion;

/// <summary>Trained float weights go out through the converter's own path and come back as an ordinary model.</summary>
public sealed class TunedConversionTests(ConvertedModels models, ITestOutputHelper output)
{
    /// <summary>f32 writes the weights exactly; what is left is BertReference's double sums against the trainable encoder's float ones.</summary>
    private const float ElementTolerance = 1e-6f;

    [Fact]
    public void A_step_at_learning_rate_zero_converts_to_the_same_q4_0_file_as_the_untuned_model()
    {
        BundledModel bundled = BundledModel.MiniLM;
        string[] vocabulary = bundled.ReadVocabulary();
        BertParameters parameters = OnnxToGguf.ReadParameters(models.Onnx(bundled), vocabulary, bundled.Pooling);
        TuningStep.Once(parameters, vocabulary, learningRate: 0);

        string path = Path.Combine(Path.GetTempPath(), $"edgeslm-tuned-{Guid.NewGuid():N}.gguf");
        try
        {
            OnnxToGguf.ConvertTo(path, parameters, vocabulary, bundled.DisplayName, TensorTypes.For(QuantType.Q4_0));
            Assert.Equal(File.ReadAllBytes(models.Path(bundled, QuantType.Q4_0)), File.ReadAllBytes(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Weights_read_back_from_an_f32_file_equal_the_onnx_weights_exactly()
    {
        BundledModel bundled = BundledModel.MiniLM;
        BertParameters fromOnnx = OnnxToGguf.ReadParameters(models.Onnx(bundled), bundled.ReadVocabulary(), bundled.Pooling);
        using BertModel model = BertModel.Load(models.Path(bundled, QuantType.F32));
        BertParameters fromFile = BertParameters.FromModel(model);
        foreach ((NamedTensor expected, NamedTensor actual) in fromOnnx.Tensors.Zip(fromFile.Tensors))
        {
            Assert.Equal(expected.Name, actual.Name);
            Assert.True(expected.Values.AsSpan().SequenceEqual(actual.Values), $"{expected.Name} differs");
        }
    }

    [Fact]
    public void A_tuned_f32_file_loads_and_encodes_as_the_trainable_encoder_does()
    {
        BundledModel bundled = BundledModel.MiniLM;
        string[] vocabulary = bundled.ReadVocabulary();
        BertParameters parameters = OnnxToGguf.ReadParameters(models.Onnx(bundled), vocabulary, bundled.Pooling);
        TuningStep.Once(parameters, vocabulary, learningRate: 1e-3f);

        string path = Path.Combine(Path.GetTempPath(), $"edgeslm-tuned-{Guid.NewGuid():N}.gguf");
        try
        {
            OnnxToGguf.ConvertTo(path, parameters, vocabulary, "tuned", TensorTypes.For(QuantType.F32));
            using BertModel model = BertModel.Load(path);
            Assert.Equal(parameters.Config, model.Config);
            var reference = new BertReference(model);
            var encoder = new TrainableEncoder(parameters);
            var activations = new TrainingActivations(parameters.Config, 64);
            var tokenizer = new WordPieceTokenizer(model.Vocabulary, model.Config.ContextLength);
            var untuned = new TrainableEncoder(OnnxToGguf.ReadParameters(models.Onnx(bundled), vocabulary, bundled.Pooling));
            var untunedActivations = new TrainingActivations(parameters.Config, 64);
            float worst = 0, moved = 0;
            foreach (string sentence in TestEnvironment.Sentences(4))
            {
                int[] ids = tokenizer.Encode(sentence);
                float[] loaded = reference.Encode(ids);
                ReadOnlySpan<float> trained = encoder.Forward(ids, activations);
                ReadOnlySpan<float> before = untuned.Forward(ids, untunedActivations);
                for (int i = 0; i < loaded.Length; i++)
                {
                    worst = Math.Max(worst, Math.Abs(loaded[i] - trained[i]));
                    moved = Math.Max(moved, Math.Abs(loaded[i] - before[i]));
                }
            }
            output.WriteLine($"largest difference from the trainable encoder {worst:E2}; from the untuned model {moved:E2}");
            Assert.True(worst <= ElementTolerance, $"the loaded file differs from the trainable encoder by {worst:E2}");
            Assert.True(moved > 100 * ElementTolerance, $"one step at 1e-3 moved the embeddings by only {moved:E2}");
        }
        finally
        {
            File.Delete(path);
        }
    }
}
