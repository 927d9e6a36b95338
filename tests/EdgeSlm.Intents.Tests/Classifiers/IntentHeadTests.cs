using System.Text.Json;
using EdgeSlm.Intents.Classifiers;

namespace EdgeSlm.Intents.Tests.Classifiers;

public sealed class IntentHeadTests
{
    [Fact]
    public void Head_read_back_from_its_file_predicts_bit_identical_probabilities()
    {
        const int dimension = 24;
        SoftmaxClassifier trained = TrainedOnNoisyClusters(dimension, out float[] features);
        using var file = new MemoryStream();
        trained.Write(file);
        file.Position = 0;
        SoftmaxClassifier read = SoftmaxClassifier.Read(file);

        Assert.Equal(trained.Classes, read.Classes);
        Assert.Equal(trained.Dimension, read.Dimension);
        var expected = new float[trained.Classes.Count];
        var actual = new float[read.Classes.Count];
        for (int i = 0; i < features.Length / dimension; i++)
        {
            trained.Predict(features.AsSpan(i * dimension, dimension), expected);
            read.Predict(features.AsSpan(i * dimension, dimension), actual);
            Assert.Equal(expected, actual);
        }
    }

    [Theory]
    [InlineData("flipped weight bit", "checksum")]
    [InlineData("wrong magic", "intent head file has the wrong magic")]
    [InlineData("future version", "version 2 is not supported")]
    [InlineData("truncated", "truncated")]
    [InlineData("huge class count", "classes of dimension")]
    public void Corrupt_head_file_is_rejected_with_a_message_saying_why(string damage, string message)
    {
        using var file = new MemoryStream();
        TrainedOnNoisyClusters(8, out _).Write(file);
        byte[] bytes = file.ToArray();
        switch (damage)
        {
            case "flipped weight bit": bytes[bytes.Length - 60] ^= 0x10; break;
            case "wrong magic": bytes[0] = (byte)'X'; break;
            case "future version": bytes[8] = 2; break;
            case "truncated": bytes = bytes[..(bytes.Length - 33)]; break;
            case "huge class count": bytes[15] = 0x7f; break;
        }
        var e = Assert.Throws<InvalidDataException>(() => SoftmaxClassifier.Read(new MemoryStream(bytes)));
        Assert.Contains(message, e.Message);
    }

    private static SoftmaxClassifier TrainedOnNoisyClusters(int dimension, out float[] features)
    {
        const int perClass = 40;
        string[] classes = ["lights_on", "lights_off", "weather", "timer"];
        var random = new Random(7);
        features = new float[classes.Length * perClass * dimension];
        var labels = new int[classes.Length * perClass];
        for (int i = 0; i < labels.Length; i++)
        {
            labels[i] = i % classes.Length;
            for (int d = 0; d < dimension; d++)
            {
                features[i * dimension + d] = (d % classes.Length == labels[i] ? 0.3f : 0f) + (float)(random.NextDouble() - 0.5);
            }
        }
        return SoftmaxClassifier.Train(classes, features, labels, dimension, new ClassifierTraining(Epochs: 5));
    }
}
