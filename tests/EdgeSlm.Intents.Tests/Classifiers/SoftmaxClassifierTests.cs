using System.Text.Json;
using EdgeSlm.Intents.Classifiers;

namespace EdgeSlm.Intents.Tests.Classifiers;

public sealed class SoftmaxClassifierTests
{
    [Fact]
    public void Classifier_learns_separable_classes_and_gives_probabilities()
    {
        const int dimension = 16, perClass = 50;
        string[] classes = ["a", "b", "c"];
        var random = new Random(1);
        var features = new float[classes.Length * perClass * dimension];
        var labels = new int[classes.Length * perClass];
        for (int i = 0; i < labels.Length; i++)
        {
            labels[i] = i % classes.Length;
            for (int d = 0; d < dimension; d++)
            {
                features[i * dimension + d] = (d == labels[i] ? 1f : 0f) + (float)(random.NextDouble() - 0.5) * 0.4f;
            }
        }
        SoftmaxClassifier classifier = SoftmaxClassifier.Train(classes, features, labels, dimension, new ClassifierTraining(Epochs: 30, LearningRate: 0.05f));
        var probabilities = new float[classes.Length];
        int correct = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            classifier.Predict(features.AsSpan(i * dimension, dimension), probabilities);
            Assert.Equal(1.0, probabilities.Sum(), 4);
            if (Array.IndexOf(probabilities, probabilities.Max()) == labels[i]) correct++;
        }
        Assert.Equal(labels.Length, correct);
    }

    [Fact]
    public void A_nearly_constant_feature_cannot_blow_up_the_probabilities_of_an_unseen_input()
    {
        // Dimension 0 separates the classes; dimension 1 is 0.995 in every training example up to a tiny jitter,
        // as one dimension of an early layer's [CLS] state is. Standardising by that jitter alone would make an
        // ordinary unseen value thousands of deviations away: logits beyond float range, NaN probabilities.
        const int dimension = 2, n = 200;
        var random = new Random(5);
        var features = new float[n * dimension];
        var labels = new int[n];
        for (int i = 0; i < n; i++)
        {
            labels[i] = i % 2;
            features[i * dimension] = (labels[i] == 0 ? -1f : 1f) + (float)(random.NextDouble() - 0.5) * 0.5f;
            features[i * dimension + 1] = 0.995f + (float)(random.NextDouble() - 0.5) * 1e-5f;
        }
        SoftmaxClassifier classifier = SoftmaxClassifier.Train(["a", "b"], features, labels, dimension, new ClassifierTraining(Epochs: 30, LearningRate: 0.05f));
        var probabilities = new float[2];
        foreach (float offAxis in new[] { 0.5f, -3f, 40f })
        {
            classifier.Predict([0.9f, offAxis], probabilities);
            Assert.All(probabilities, p => Assert.True(float.IsFinite(p), $"probabilities {probabilities[0]}, {probabilities[1]} at {offAxis}"));
            Assert.Equal(1.0, probabilities.Sum(), 4);
        }
        classifier.Predict([0.9f, 0.995f], probabilities);
        Assert.True(probabilities[1] > 0.9, $"p(b) = {probabilities[1]}");
    }
}
