"""Sample-quality metrics and the feature networks they use.

features.load_feature_net("digits" | "inception", weights) -> FeatureNet: images in [-1, 1] -> features, logits
fid.frechet_distance, fid.FeatureMoments      Fréchet distance of Gaussians fitted to features (float64)
kid.kernel_inception_distance                 unbiased MMD², cubic polynomial kernel, mean ± std over subsets
inception_score.inception_score               exp E KL(p(y|x) || p(y)), mean ± std over splits
precision_recall.precision_recall             k-NN manifold precision and recall (Kynkäänniemi et al. 2019)
reference.cached_source_features              features of a dataset split, cached by everything they depend on
restoration.per_image_psnr / per_image_ssim   PSNR and SSIM of image pairs (data range, RGB or Y, border crop)
lpips.lpips_distance                          LPIPS (AlexNet, v0.1) with weights from lpips_weights.load_lpips_variables
"""
