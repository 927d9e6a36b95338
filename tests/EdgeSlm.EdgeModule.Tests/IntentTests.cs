using System.Text.Json;
using EdgeSlm.EdgeModule.Cli;
using EdgeSlm.EdgeModule.Conversion;
using EdgeSlm.EdgeModule.Intents;
using EdgeSlm.EdgeModule.Model;
using EdgeSlm.Kernels.Formats;

namespace EdgeSlm.EdgeModule.Tests;

public sealed class IntentTests(ConvertedModels models)
{
    [Theory]
    [InlineData("snips2017")]
    [InlineData("hwu64")]
    [InlineData("ha_intents_en")]
    public void Every_slot_span_of_the_shared_datasets_slices_to_its_value(string dataset)
    {
        // The files give offsets in code points; SNIPS has an emoji (two UTF-16 units) before some slots.
        List<IntentExample> examples = IntentExample.ReadJsonLines(Path.Combine(TestEnvironment.DatasetsDirectory, dataset, "train.jsonl"));
        Assert.True(examples.Count > 500);
        int spans = 0;
        foreach (IntentExample example in examples)
        {
            foreach (SlotSpan slot in example.Slots)
            {
                Assert.Equal(slot.Value, example.Text[slot.Start..slot.End]);
                spans++;
            }
        }
        Assert.True(spans > 100);
    }

    [Fact]
    public void A_malformed_line_is_reported_with_file_and_line()
    {
        string path = Path.GetTempFileName();
        File.WriteAllLines(path, ["{\"text\": \"hi\", \"intent\": \"greet\", \"slots\": []}", "{\"text\": \"no intent\"}"]);
        var e = Assert.Throws<FormatException>(() => IntentExample.ReadJsonLines(path));
        Assert.Contains($"{path}:2", e.Message);
        File.Delete(path);
    }

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

    [Fact]
    public void Evaluation_on_home_assistant_sentences_recognises_held_out_paraphrases()
    {
        // Dev split carved from the train file: every fifth example of each intent.
        List<IntentExample> all = IntentExample.ReadJsonLines(Path.Combine(TestEnvironment.DatasetsDirectory, "ha_intents_en", "train.jsonl"));
        var train = all.Where((_, i) => i % 5 != 0).ToList();
        var test = all.Where((_, i) => i % 5 == 0).ToList();
        using BertModel model = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        EvaluationReport report = IntentEvaluation.Run(model, train, test, threads: 2, new ClassifierTraining());
        Assert.Equal(test.Count, report.Count);
        Assert.InRange(report.Accuracy, 0.80, 1.0);
        Assert.InRange(report.MacroF1, 0.5, 1.0);
        Assert.Null(report.OutOfScopeRecall);
        Assert.True(report.P50Microseconds > 0 && report.P99Microseconds >= report.P50Microseconds);
    }

    [Fact]
    public void Out_of_scope_examples_train_a_rejecting_class_and_are_measured()
    {
        // 15 CLINC intents plus its out-of-scope examples; tested on the same intents of CLINC's dev split.
        string clinc = Path.Combine(TestEnvironment.DatasetsDirectory, "clinc150");
        List<IntentExample> train = IntentExample.ReadJsonLines(Path.Combine(clinc, "train.jsonl"));
        List<IntentExample> dev = IntentExample.ReadJsonLines(Path.Combine(clinc, "dev.jsonl"));
        HashSet<string> chosen = train.Select(e => e.Intent).Where(i => i != IntentExample.OutOfScope).Distinct().Order().Take(15).Append(IntentExample.OutOfScope).ToHashSet();
        using BertModel model = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        EvaluationReport report = IntentEvaluation.Run(model, train.Where(e => chosen.Contains(e.Intent)).ToList(),
            dev.Where(e => chosen.Contains(e.Intent)).ToList(), threads: 2, new ClassifierTraining());
        Assert.NotNull(report.OutOfScopeRecall);
        Assert.NotNull(report.OutOfScopePrecision);
        Assert.InRange(report.OutOfScopeRecall!.Value, 0.3, 1.0);
        Assert.InRange(report.InScopeAccuracy, 0.8, 1.0);
    }

    [Fact]
    public void Final_head_is_refitted_on_the_held_out_in_scope_examples_but_not_on_the_held_out_out_of_scope_ones()
    {
        // Every example has a word of its own, so the words the final head knows tell which examples it was trained
        // on. Ten examples per class: one in-scope example of each intent is held out to choose the settings, and
        // three out-of-scope ones to calibrate the threshold.
        string[] things = ["desk", "porch", "attic", "garage", "hallway", "pantry", "cellar", "nursery", "balcony", "studio"];
        string[] cities = ["paris", "lisbon", "oslo", "quito", "lima", "dakar", "hanoi", "perth", "tunis", "riga"];
        string[][] unrelated =
        [
            ["zebra", "quartz", "violin"], ["mango", "glacier", "sonnet"], ["pirate", "tulip", "comet"], ["walrus", "opera", "cactus"],
            ["lantern", "badger", "fjord"], ["walnut", "meteor", "ballet"], ["falcon", "saffron", "canyon"], ["oyster", "sphinx", "harp"],
            ["llama", "cobalt", "sonata"], ["turnip", "nebula", "kayak"],
        ];
        var inScope = things.Select(t => new IntentExample($"switch on the {t} lamp", "lights_on", []))
            .Concat(cities.Select(c => new IntentExample($"what is the weather in {c}", "weather", []))).ToList();
        var outOfScope = unrelated.Select(words => new IntentExample(string.Join(' ', words), IntentExample.OutOfScope, [])).ToList();

        using BertModel model = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        using var features = new SentenceFeatures([model], threads: 2);
        IntentEvaluation.TrainedHead trained = IntentEvaluation.TrainHead(features, [.. inScope, .. outOfScope], new ClassifierTraining(Threads: 2),
            threshold: null, lexicalWeight: 0.5f);

        // Three words make five terms (words and adjacent pairs), none shared with another example.
        int inScopeTerms = inScope.SelectMany(e => LexicalClassifier.Terms(e.Text)).Distinct(StringComparer.Ordinal).Count();
        Assert.Equal(inScopeTerms + (outOfScope.Count - 3) * 5, trained.Head.Lexical!.VocabularySize);
        Assert.Equal(0.5f, trained.Head.LexicalWeight);
    }

    [Fact]
    public void Eval_command_prints_one_json_object_with_the_documented_keys()
    {
        string directory = Path.Combine(Path.GetTempPath(), "edgeslm-eval-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        string[] lines = File.ReadAllLines(Path.Combine(TestEnvironment.DatasetsDirectory, "ha_intents_en", "train.jsonl"));
        File.WriteAllLines(Path.Combine(directory, "train.jsonl"), lines.Where((_, i) => i % 4 != 0));
        File.WriteAllLines(Path.Combine(directory, "test.jsonl"), lines.Where((_, i) => i % 4 == 0).Take(40));
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CommandLine.Run(["eval", "--model", models.Path(BundledModel.MiniLM, QuantType.Q4_0), "--train", Path.Combine(directory, "train.jsonl"),
            "--test", Path.Combine(directory, "test.jsonl"), "--json", "--epochs", "10"], output, error);
        Assert.Equal(0, code);
        using JsonDocument json = JsonDocument.Parse(output.ToString());
        foreach (string key in new[] { "accuracy", "macro_f1", "inscope_accuracy", "oos_recall", "oos_precision", "slot_f1", "p50_us", "p99_us", "n" })
        {
            Assert.True(json.RootElement.TryGetProperty(key, out _), key);
        }
        Assert.Equal(40, json.RootElement.GetProperty("n").GetInt32());

        File.WriteAllText(Path.Combine(directory, "bad.jsonl"), "not json\n");
        int bad = CommandLine.Run(["eval", "--model", models.Path(BundledModel.MiniLM, QuantType.Q4_0), "--train", Path.Combine(directory, "bad.jsonl"),
            "--test", Path.Combine(directory, "test.jsonl")], new StringWriter(), error);
        Assert.Equal(1, bad);
        Assert.Contains("bad.jsonl:1", error.ToString());
        Directory.Delete(directory, recursive: true);
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

    [Fact]
    public void Features_are_the_sentence_embedding_then_the_earlier_layers_pooled_alike()
    {
        Assert.Equal([3, 4], SentenceFeatures.PooledLayers(6));
        Assert.Equal([6, 8], SentenceFeatures.PooledLayers(12));
        Assert.Equal([1], SentenceFeatures.PooledLayers(2));
        Assert.Empty(SentenceFeatures.PooledLayers(1));

        string[] texts = ["turn on the kitchen lights", "what alarms do i have tomorrow", "mute"];
        using BertModel minilm = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        using var layered = new SentenceFeatures([minilm], threads: 1);
        using var last = new SentenceFeatures([minilm], threads: 1, earlierLayers: false);
        int hidden = minilm.Config.HiddenSize;
        Assert.Equal(hidden, last.Dimension);
        Assert.Equal(3 * hidden, layered.Dimension);
        Assert.NotEqual(last.Fingerprint, layered.Fingerprint);

        var withLayers = new float[texts.Length * layered.Dimension];
        var lastOnly = new float[texts.Length * last.Dimension];
        layered.Embed(texts, withLayers);
        last.Embed(texts, lastOnly);
        for (int i = 0; i < texts.Length; i++)
        {
            Span<float> row = withLayers.AsSpan(i * layered.Dimension, layered.Dimension);
            Assert.Equal(lastOnly.AsSpan(i * hidden, hidden), row[..hidden]);
            for (int block = 0; block < 3; block++)
            {
                Assert.Equal(1.0, System.Numerics.Tensors.TensorPrimitives.Norm<float>(row.Slice(block * hidden, hidden)), 4);
            }
            // Layer 3 is not the last layer: the blocks differ, though they describe the same sentence.
            double cosine = Cosine.Of(row[..hidden].ToArray(), row.Slice(hidden, hidden).ToArray());
            Assert.InRange(cosine, 0.1, 0.999);
        }

        // MiniLM pools by the mean, so pooling after its last layer is its sentence embedding; bad layer lists are refused.
        using var encoder = new BertEncoder(minilm);
        int[] ids = new WordPieceTokenizer(minilm.Vocabulary, minilm.Config.ContextLength).Encode(texts[0], out _);
        var embedding = new float[hidden];
        var pooled = new float[hidden];
        encoder.Encode(ids, [ids.Length], embedding, [minilm.Config.LayerCount], pooled);
        Assert.Equal(embedding, pooled);
        Assert.Throws<ArgumentOutOfRangeException>(() => encoder.Encode(ids, [ids.Length], embedding, [4, 3], new float[2 * hidden]));
        Assert.Throws<ArgumentOutOfRangeException>(() => encoder.Encode(ids, [ids.Length], embedding, [0], new float[hidden]));
        Assert.Throws<ArgumentException>(() => encoder.Encode(ids, [ids.Length], embedding, [3], new float[2 * hidden]));
    }

    [Fact]
    public void Two_encoders_give_each_encoders_features_side_by_side()
    {
        string[] texts = ["turn on the kitchen lights", "what's the weather like in Paris tomorrow", "set a timer for ten minutes", "hi",
            .. Enumerable.Range(0, 37).Select(i => $"play song number {i} from my favourite playlist")]; // 41: one full batch of 32 and a partial one
        using BertModel minilm = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        using BertModel arctic = BertModel.Load(models.Path(BundledModel.ArcticXs, QuantType.Q4_0));
        using var both = new SentenceFeatures([minilm, arctic], threads: 2);
        using var first = new SentenceFeatures([minilm], threads: 2);
        using var second = new SentenceFeatures([arctic], threads: 1);
        Assert.Equal(first.Dimension + second.Dimension, both.Dimension);

        var joined = new float[texts.Length * both.Dimension];
        var a = new float[texts.Length * first.Dimension];
        var b = new float[texts.Length * second.Dimension];
        both.Embed(texts, joined);
        first.Embed(texts, a);
        second.Embed(texts, b);
        for (int i = 0; i < texts.Length; i++)
        {
            Assert.Equal(a.AsSpan(i * first.Dimension, first.Dimension), joined.AsSpan(i * both.Dimension, first.Dimension));
            Assert.Equal(b.AsSpan(i * second.Dimension, second.Dimension), joined.AsSpan(i * both.Dimension + first.Dimension, second.Dimension));
        }

        // One sentence on its own gets the same features as inside a batch, to rounding.
        var single = new float[both.Dimension];
        both.Embed(texts[1], single);
        Assert.True(Cosine.Of(single, joined.AsSpan(both.Dimension, both.Dimension).ToArray()) > 0.9999);

        Assert.StartsWith(Path.GetFileName(minilm.Path) + ":", both.Fingerprint);
        Assert.Contains("+" + Path.GetFileName(arctic.Path) + ":", both.Fingerprint);
        using var reversed = new SentenceFeatures([arctic, minilm], threads: 1);
        Assert.NotEqual(both.Fingerprint, reversed.Fingerprint);
        Assert.Throws<ArgumentException>(() => both.Embed(texts, new float[texts.Length * first.Dimension]));
    }

    [Fact]
    public void Model_list_resolves_each_comma_separated_file_and_rejects_empty_names()
    {
        string minilm = models.Path(BundledModel.MiniLM, QuantType.Q4_0);
        string arctic = models.Path(BundledModel.ArcticXs, QuantType.Q4_0);
        Assert.Equal([minilm, arctic], ModelCache.ResolveAll($"{minilm}, {arctic}", null));
        Assert.Throws<ArgumentException>(() => ModelCache.ResolveAll($"{minilm},,{arctic}", null));
        Assert.Throws<FileNotFoundException>(() => ModelCache.ResolveAll(minilm + ".missing", null));
        Assert.Throws<ArgumentException>(() => ModelCache.Resolve("bundled:no-such-model", null));
    }
}
